//! Reading the figures out of each benchmark's own output. The benches print free text; these
//! parsers look for the shapes they document (`N things/s`, `p99 X ms`, criterion's
//! `time: [lo mid hi]`), and return `None` when the shape is not there (the table then says
//! so rather than inventing a figure).

/// The number just before `unit` (e.g. `1234 settlements/s`) on the first line holding it.
pub fn rate(text: &str, unit: &str) -> Option<f64> {
    text.lines().find_map(|line| number_before(line, unit))
}

/// The number just before `unit` on the first line that also contains `marker`.
pub fn rate_on(text: &str, marker: &str, unit: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.contains(marker))
        .find_map(|line| number_before(line, unit))
}

fn number_before(line: &str, unit: &str) -> Option<f64> {
    let at = line.find(unit)?;
    line[..at]
        .split_whitespace()
        .last()?
        .trim_end_matches(':')
        .replace(',', "")
        .parse()
        .ok()
}

/// The number after `key` (e.g. `p99 12.3`, `median 402.10`) on the first line containing
/// `marker`.
pub fn after(text: &str, marker: &str, key: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.contains(marker))
        .find_map(|line| {
            let rest = &line[line.find(key)? + key.len()..];
            rest.split_whitespace()
                .next()?
                .trim_end_matches([',', ';'])
                .parse()
                .ok()
        })
}

/// Criterion's middle estimate for benchmark `id`, in nanoseconds: the `time: [lo mid hi]`
/// line that follows the line naming `id` (or the same line, when the name is short).
pub fn criterion_ns(text: &str, id: &str) -> Option<f64> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| l.trim_start().starts_with(id))?;
    let line = lines[start..start + 2.min(lines.len() - start)]
        .iter()
        .find(|l| l.contains("time:"))?;
    let inside = line.split('[').nth(1)?.split(']').next()?;
    let parts: Vec<&str> = inside.split_whitespace().collect();
    let (value, unit) = (parts.get(2)?, parts.get(3)?);
    let value: f64 = value.parse().ok()?;
    let scale = match *unit {
        "ps" => 1e-3,
        "ns" => 1.0,
        "µs" | "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        _ => return None,
    };
    Some(value * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settle_bench_lines() {
        let text = "[sqlite] imported 20000 persons in 3.1 s\n\
            [sqlite] 4000 settlements (2204+2207) by 32 clients in 2.50 s: 1600 settlements/s\n\
            [sqlite] 2204+2207 latency ms: p50 15.20 p99 41.07 p999 60.00 max 70.10";
        assert_eq!(rate(text, "settlements/s"), Some(1600.0));
        assert_eq!(after(text, "2204+2207 latency", "p99"), Some(41.07));
        assert_eq!(after(text, "2204+2207 latency", "p50"), Some(15.2));
    }

    #[test]
    fn payments_and_ledger_lines() {
        let text = "payments_bench: 2000 authorisations, 16 terminals, 795 auths/s, p50 32.00 ms, p99 141.00 ms, p999 200.00 ms";
        assert_eq!(rate(text, "auths/s"), Some(795.0));
        assert_eq!(after(text, "payments_bench", "p99"), Some(141.0));
        let text = "sqlite: 5000 postings, 32 submitters, 0.50 s: 10000 postings/s; latency p50 2.00 ms, p99 19.50 ms, max 30.00 ms";
        assert_eq!(rate(text, "postings/s"), Some(10000.0));
        assert_eq!(after(text, "postings/s", "p99"), Some(19.5));
    }

    #[test]
    fn criterion_lines() {
        let text = "emv/arqc_verify_arpc_tdes\n                        time:   [4.5012 µs 4.6000 µs 4.7100 µs]\n                        thrpt:  [212.31 Kelem/s 217.39 Kelem/s 222.16 Kelem/s]\n\
            pin/translate_iso0_tdes time:   [2.4000 µs 2.5000 µs 2.6000 µs]";
        assert_eq!(
            criterion_ns(text, "emv/arqc_verify_arpc_tdes"),
            Some(4600.0)
        );
        assert_eq!(criterion_ns(text, "pin/translate_iso0_tdes"), Some(2500.0));
        assert_eq!(criterion_ns(text, "emv/missing"), None);
    }

    #[test]
    fn region_bench_lines() {
        let line = "[sqlite] cross-region (Beijing at Tianjin): 1000 settlements (2207) by 16 clients: 412/s, p50 30.1 ms, p99 88.0 ms, max 120.0 ms (load average before: 1.20 0.90 0.80; 2 cores)";
        assert_eq!(rate(line, "/s"), Some(412.0));
        assert_eq!(after(line, "/s", "p99"), Some(88.0));
    }

    #[test]
    fn card_read_lines() {
        let text = "beijing-2g.toml: 17 APDUs per read (identity + holder)\n  inserted → identity returned: median 402.10 ms, min 400.00, max 410.00 (n=10)\n  warm reads, card left in: 1.40 ms per read, 714 reads/s, 12138 APDU/s";
        assert_eq!(after(text, "inserted → identity", "median"), Some(402.1));
        assert_eq!(rate(text, "reads/s"), Some(714.0));
        assert_eq!(rate(text, "APDUs per read"), Some(17.0));
    }
}
