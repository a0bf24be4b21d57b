//! The summary a person reads in ten seconds (stdout): settlements by treating region, the
//! fund/account/cash totals, the net positions between regions after the clearing window
//! closed (they sum to zero), payments by bank with each bank's own count beside ours, and
//! where the console (or the directory) is served. `tests/tests/demo.rs` reads it back.

#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::cluster::Cluster;
use crate::money::fen_to_yuan;
use crate::payments::{BankLog, Payments};
use crate::play::{DayResult, Outcome};

/// Everything the summary shows.
pub struct Summary<'a> {
    /// What the day produced.
    pub day: &'a DayResult,
    /// The cluster (names, URLs).
    pub cluster: &'a Cluster,
    /// The payment side.
    pub payments: &'a Payments,
    /// Each bank's own log.
    pub bank_logs: Vec<BankLog>,
    /// (node, counter, fen) from every node.
    pub positions: &'a [(String, String, i64)],
    /// The windows closed.
    pub windows: &'a [(String, i64)],
    /// How the cards reached the agent.
    pub reader_mode: &'a str,
    /// The console's (or the directory's) line.
    pub web_line: String,
    /// Wall time.
    pub elapsed: Duration,
    /// Logs and data.
    pub data: &'a Path,
}

/// `text` cut and padded to `width` terminal columns (CJK characters take two).
pub fn pad(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    for c in text.chars() {
        let w = if c.is_ascii() { 1 } else { 2 };
        if used + w > width {
            break;
        }
        out.push(c);
        used += w;
    }
    out.push_str(&" ".repeat(width.saturating_sub(used)));
    out
}

impl Summary<'_> {
    fn name(&self, admdvs: &str) -> String {
        let name = self
            .cluster
            .nodes
            .iter()
            .find(|n| n.admdvs == admdvs)
            .map_or("", |n| n.name.as_str());
        format!("{admdvs} {}", pad(name, 6))
    }

    /// Prints the summary.
    pub fn print(&self) {
        let d = self.day;
        let kept: Vec<_> = d
            .settlements
            .iter()
            .filter(|s| s.outcome == Outcome::Settled)
            .collect();
        let cancelled = d
            .settlements
            .iter()
            .filter(|s| s.outcome == Outcome::Cancelled)
            .count();
        let reversed = d
            .settlements
            .iter()
            .filter(|s| s.outcome == Outcome::Reversed)
            .count();
        println!();
        println!(
            "ssc-demo: a day on {} regional nodes in {:.1} s: {} settlements kept, {} cancelled, {} reversed after a lost reply; {} payments",
            self.cluster.nodes.len(),
            self.elapsed.as_secs_f64(),
            kept.len(),
            cancelled,
            reversed,
            d.payments.len()
        );
        println!("cards: {}", self.reader_mode);
        let read: Vec<String> = d
            .cards_read
            .iter()
            .map(|(label, version, holder)| format!("{label} ({version}, {holder})"))
            .collect();
        println!("read at the kiosk with PIN: {}", read.join(", "));
        println!();
        println!(
            "{:<14} {:>5} {:>11} {:>11} {:>11} {:>11}   (yuan; cross = insured elsewhere)",
            "settlements", "count", "bill", "fund", "account", "cash"
        );
        let mut by_region: BTreeMap<&str, ([i64; 4], usize, usize)> = BTreeMap::new();
        for node in &self.cluster.nodes {
            by_region.insert(&node.admdvs, ([0; 4], 0, 0));
        }
        for s in &kept {
            let entry = by_region.entry(&s.treating).or_default();
            for (t, a) in entry.0.iter_mut().zip(s.amounts) {
                *t += a;
            }
            entry.1 += 1;
            if s.treating != s.insured {
                entry.2 += 1;
            }
        }
        let mut total = [0i64; 4];
        for (region, (sums, count, cross)) in &by_region {
            for (t, a) in total.iter_mut().zip(sums) {
                *t += a;
            }
            println!(
                "{} {count:>5} {:>11} {:>11} {:>11} {:>11}   {cross} cross",
                self.name(region),
                fen_to_yuan(sums[0]),
                fen_to_yuan(sums[1]),
                fen_to_yuan(sums[2]),
                fen_to_yuan(sums[3])
            );
        }
        println!(
            "{:<14} {:>5} {:>11} {:>11} {:>11} {:>11}",
            "total",
            kept.len(),
            fen_to_yuan(total[0]),
            fen_to_yuan(total[1]),
            fen_to_yuan(total[2]),
            fen_to_yuan(total[3])
        );
        println!();
        let windows: Vec<String> = self
            .windows
            .iter()
            .map(|(node, id)| format!("{node}#{id}"))
            .collect();
        println!(
            "net positions after the clearing windows closed ({}), yuan:",
            windows.join(" ")
        );
        let mut sum = 0;
        for (node, counter, fen) in self.positions {
            sum += fen;
            if *fen > 0 {
                println!(
                    "{} is owed by {} {:>11}",
                    self.name(node),
                    self.name(counter),
                    fen_to_yuan(*fen)
                );
            }
        }
        println!(
            "sum of every node's positions {:>11}{}",
            fen_to_yuan(sum),
            if sum == 0 {
                " (balanced)"
            } else {
                " (NOT BALANCED)"
            }
        );
        println!();
        println!(
            "{:<20} {:>8} {:>10} {:>8}   bank's own log",
            "payments by bank", "approved", "yuan", "declined"
        );
        for (bank, log) in self.payments.banks.iter().zip(&self.bank_logs) {
            let mine: Vec<_> = d.payments.iter().filter(|p| p.bank == bank.code).collect();
            let approved: Vec<_> = mine.iter().filter(|p| p.approved_fen > 0).collect();
            let qr = mine.iter().filter(|p| p.channel == "qr").count();
            println!(
                "{} {:>8} {:>10} {:>8}   {} approved, {}{}",
                pad(&format!("{} {}", bank.code, bank.name), 20),
                approved.len(),
                fen_to_yuan(approved.iter().map(|p| p.approved_fen).sum()),
                mine.len() - approved.len(),
                log.approved,
                fen_to_yuan(log.approved_fen),
                if qr > 0 {
                    format!("; {qr} by QR")
                } else {
                    String::new()
                }
            );
        }
        let mut notes: Vec<&String> = d.skipped.iter().collect();
        notes.dedup();
        for skipped in notes {
            println!("note: {skipped}");
        }
        println!();
        println!("{}", self.web_line);
        println!("logs and data: {}", self.data.display());
    }
}
