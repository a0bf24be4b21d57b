//! The day's expected totals, computed HERE from the fixtures (the day script, the treating
//! regions' catalogues, the insured regions' policy tables, the persons, institutions and bank
//! routing) with integer fen arithmetic written in this file: never with the settlement crate's
//! code, never from what the demo printed.
//!
//! The arithmetic is the order of medical-settlement.md §4.1 as the policy tables and their
//! README state it: classify each line with the treating region's catalogue (丙 or
//! selfpay_prop 1 → full own pay; a unit price above the cap → over-limit; 乙 → self-pay-first
//! = the rest × selfpay_prop, half-up); pick the insured region's rule (insutype, psn_type,
//! setting, hospital level, age); deductible (annual: net of the year's use; per admission:
//! first or later admission); bands on the bill or the year's in-scope sum, each band's pay
//! rounded half-up, limited by the basic annual cap; a second tier (beyond the basic cap, or
//! the year's personal in-scope share above its deductible); a pharmacy where the region's
//! pooled fund does not pay: funds 0 and the account for employees only; the account pays
//! min(balance, personal part); cash the rest. 京津冀 visits across provinces count as filed
//! (视同备案): no unfiled cut. Bank answers follow tests/bank-sim/bank_sim.py's documented rules.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

/// A ratio as an exact fraction over 10^6 ("0.922" → 922_000).
const RATIO_DEN: i128 = 1_000_000;

fn ratio(text: &str) -> i128 {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    assert!(frac.len() <= 6, "{text}");
    let frac = format!("{frac:0<6}");
    whole.parse::<i128>().unwrap() * RATIO_DEN + frac.parse::<i128>().unwrap()
}

/// Yuan text → fen.
pub fn fen(text: &str) -> i64 {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    assert!(frac.len() <= 2, "{text}");
    whole.parse::<i64>().unwrap() * 100 + format!("{frac:0<2}").parse::<i64>().unwrap()
}

/// amount × ratio, rounded half-up (amount ≥ 0).
fn mul_half_up(amount: i64, r: i128) -> i64 {
    let p = i128::from(amount) * r;
    i64::try_from((2 * p + RATIO_DEN) / (2 * RATIO_DEN)).unwrap()
}

/// amount / ratio, rounded half-up (ratio > 0).
fn div_half_up(amount: i64, r: i128) -> i64 {
    let n = i128::from(amount) * RATIO_DEN;
    i64::try_from((2 * n + r) / (2 * r)).unwrap()
}

fn csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    lines
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(str::to_owned))
                .collect()
        })
        .collect()
}

struct Entry {
    class: String,
    cap: Option<i64>,
    selfpay: i128,
}

/// (fulamt, overlmt, preselfpay, inscp) of `cnt` × `pric` under `entry`.
fn classify(entry: &Entry, cnt: i64, pric: i64) -> [i64; 4] {
    let det = cnt * pric;
    if entry.class == "03" || entry.selfpay >= RATIO_DEN {
        return [det, 0, 0, 0];
    }
    let overlmt = match entry.cap {
        Some(cap) if pric > cap => det - cnt * cap,
        _ => 0,
    };
    let pre = if entry.class == "02" {
        mul_half_up(det - overlmt, entry.selfpay)
    } else {
        0
    };
    [0, overlmt, pre, det - overlmt - pre]
}

/// One band walk: (pay, beyond the cap), as §4.1 and the tables' README define the bands.
fn walk(
    segments: &[(Option<i64>, i128)],
    from: i64,
    to: i64,
    mut cap_left: Option<i64>,
) -> (i64, i64) {
    let (mut pay_sum, mut beyond) = (0, 0);
    let mut lo = 0;
    for (upto, r) in segments {
        let hi = upto.unwrap_or(i64::MAX);
        let chunk = (hi.min(to) - lo.max(from)).max(0);
        if chunk > 0 {
            let mut pay = mul_half_up(chunk, *r);
            if let Some(left) = cap_left.as_mut() {
                if pay > *left {
                    let covered = div_half_up(*left, *r).min(chunk);
                    beyond += chunk - covered;
                    pay = *left;
                }
                *left -= pay;
            }
            pay_sum += pay;
        }
        lo = hi;
        if lo >= to {
            break;
        }
    }
    (pay_sum, beyond)
}

fn segments(table: &toml::Value) -> Vec<(Option<i64>, i128)> {
    table
        .get("segment")
        .and_then(|s| s.as_array())
        .map(|list| {
            list.iter()
                .map(|s| {
                    (
                        s.get("upto_yuan").map(|u| fen(u.as_str().unwrap())),
                        ratio(s["ratio"].as_str().unwrap()),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A person's year so far, per setting.
#[derive(Default, Clone, Copy)]
struct Acc {
    deductible_used: i64,
    inscp_sum: i64,
    hifp_paid: i64,
    tier_paid: i64,
    psn_inscp_share: i64,
    admissions: i64,
}

struct Person {
    insutype: String,
    psn_type: String,
    insuplc: String,
    brdy: (i64, i64, i64),
    balance: i64,
    acc: BTreeMap<String, Acc>,
}

/// One expected settlement.
#[derive(Debug, Clone)]
pub struct Expected {
    /// Treating node (province-level code).
    pub treating: String,
    /// Insured node.
    pub insured: String,
    /// bill, fund, account, cash (fen).
    pub amounts: [i64; 4],
    /// Kept (not cancelled, not reversed).
    pub kept: bool,
}

/// One expected payment.
#[derive(Debug, Clone)]
pub struct ExpectedPayment {
    /// Bank code.
    pub bank: String,
    /// Approved fen (0 = declined).
    pub approved_fen: i64,
    /// `card` or `qr`.
    pub channel: &'static str,
}

/// The whole day, expected.
pub struct Oracle {
    /// Every settlement, in order.
    pub settlements: Vec<Expected>,
    /// Every payment, in order.
    pub payments: Vec<ExpectedPayment>,
}

/// The node (province-level code) of a division: the `serves` prefix of the regions file.
fn node_of(regions: &toml::Value, admdvs: &str) -> String {
    regions["region"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["serves"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| admdvs.starts_with(p.as_str().unwrap()))
        })
        .map(|r| r["admdvs"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no node serves {admdvs}"))
}

/// The issuer simulator's answer to an authorisation of `amount` fen (bank_sim.py docstring):
/// ending 51 / 55 / 05 → declined with that code; 10 → half approved; else approved.
fn bank_answer(amount: i64) -> i64 {
    match amount % 100 {
        51 | 55 | 5 => 0,
        97..=99 => panic!("the day should not use the simulator's fault amounts"),
        10 => amount / 2,
        _ => amount,
    }
}

/// The institutions of the fixtures, by code.
fn institutions(fixtures: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    csv(&fixtures.join("institutions/institutions.csv"))
        .into_iter()
        .map(|r| (r["fixmedins_code"].clone(), r))
        .collect()
}

/// The persons of the fixtures as imported (no settlement yet this year), by psn_no.
fn persons(fixtures: &Path) -> BTreeMap<String, Person> {
    csv(&fixtures.join("persons/cards.csv"))
        .into_iter()
        .map(|r| {
            let b: Vec<i64> = r["brdy"].split('-').map(|x| x.parse().unwrap()).collect();
            (
                r["psn_no"].clone(),
                Person {
                    insutype: r["insutype"].clone(),
                    psn_type: r["psn_type"].clone(),
                    insuplc: r["insuplc_admdvs"].clone(),
                    brdy: (b[0], b[1], b[2]),
                    balance: fen(&r["acct_balance"]),
                    acc: BTreeMap::new(),
                },
            )
        })
        .collect()
}

/// One settlement of fixture person `psn_no` at institution `at` (its first this year, on
/// freshly imported data): (treating node, insured node, [bill, fund, account, cash] in fen).
/// `bill` is a table with `lines = [{ code, cnt, pric }]`, as in `fixtures/day/day.toml`.
pub fn first_settlement(
    fixtures: &Path,
    psn_no: &str,
    at: &str,
    bill: &toml::Value,
    setting: &str,
    today: (i64, i64, i64),
) -> (String, String, [i64; 4]) {
    let regions: toml::Value =
        toml::from_str(&std::fs::read_to_string(fixtures.join("regions/regions.toml")).unwrap())
            .unwrap();
    let institutions = institutions(fixtures);
    let mut persons = persons(fixtures);
    let at = &institutions[at];
    let person = persons.get_mut(psn_no).unwrap();
    let treating = node_of(&regions, &at["admdvs"]);
    let insured = node_of(&regions, &person.insuplc);
    let amounts = settle(fixtures, person, at, bill, setting, today);
    (treating, insured, amounts)
}

impl Oracle {
    /// Computes the day of `fixtures/day/day.toml` on the date `today` (y, m, d, Asia/Shanghai).
    pub fn compute(fixtures: &Path, today: (i64, i64, i64)) -> Oracle {
        let day: toml::Value =
            toml::from_str(&std::fs::read_to_string(fixtures.join("day/day.toml")).unwrap())
                .unwrap();
        let regions: toml::Value = toml::from_str(
            &std::fs::read_to_string(fixtures.join("regions/regions.toml")).unwrap(),
        )
        .unwrap();
        let routing: toml::Value =
            toml::from_str(&std::fs::read_to_string(fixtures.join("banks/routing.toml")).unwrap())
                .unwrap();
        let institutions = institutions(fixtures);
        let mut persons = persons(fixtures);
        let mut pans: BTreeMap<String, String> = BTreeMap::new();
        for item in std::fs::read_dir(fixtures.join("cards")).unwrap() {
            let path = item.unwrap().path();
            if path.extension().is_some_and(|x| x == "toml") {
                let card: toml::Value =
                    toml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                pans.insert(
                    card["label"].as_str().unwrap().to_owned(),
                    card["pboc"]["pan"].as_str().unwrap().to_owned(),
                );
            }
        }
        let bank_of = |pan: &str| -> String {
            routing["range"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| pan.starts_with(r["bin_prefix"].as_str().unwrap()))
                .max_by_key(|r| r["bin_prefix"].as_str().unwrap().len())
                .map(|r| r["bank"].as_str().unwrap().to_owned())
                .unwrap()
        };

        let events = day["event"].as_array().unwrap();
        let mut settlements = Vec::new();
        let mut payments = Vec::new();
        for (i, event) in events.iter().enumerate() {
            let text = |k: &str| event.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            match text("kind").unwrap().as_str() {
                "payment" | "qr" => {
                    let amount = fen(&text("amount").unwrap());
                    payments.push(ExpectedPayment {
                        bank: bank_of(&pans[&text("card").unwrap()]),
                        approved_fen: bank_answer(amount),
                        channel: if text("kind").unwrap() == "qr" {
                            "qr"
                        } else {
                            "card"
                        },
                    });
                }
                "visit" => {
                    let who = text("who").unwrap();
                    let kept = text("then").is_none();
                    if !kept {
                        // A cancelled or reversed settlement leaves the person's year as it
                        // was; the oracle simply skips it, which holds only if it is the
                        // person's last visit of the day.
                        let later = events[i + 1..]
                            .iter()
                            .any(|e| e.get("who").and_then(|w| w.as_str()) == Some(&who));
                        assert!(!later, "the day must not use {who} after a cancellation");
                    }
                    let at = &institutions[&text("at").unwrap()];
                    let bill = &day["bills"][text("bill").unwrap()];
                    let setting = text("setting").unwrap();
                    let person = persons.get_mut(&who).unwrap();
                    let treating = node_of(&regions, &at["admdvs"]);
                    let insured = node_of(&regions, &person.insuplc);
                    let amounts = settle(fixtures, person, at, bill, &setting, today);
                    settlements.push(Expected {
                        treating,
                        insured,
                        amounts,
                        kept,
                    });
                }
                other => panic!("unknown event kind {other}"),
            }
        }
        Oracle {
            settlements,
            payments,
        }
    }
}

/// One settlement's [bill, fund, account, cash] in fen, updating the person's year and account.
fn settle(
    fixtures: &Path,
    person: &mut Person,
    at: &BTreeMap<String, String>,
    bill: &toml::Value,
    setting: &str,
    today: (i64, i64, i64),
) -> [i64; 4] {
    // Classification by the TREATING region's catalogue.
    let catalogue: BTreeMap<String, Entry> =
        csv(&fixtures.join(format!("catalogue/{}.csv", at["admdvs"])))
            .into_iter()
            .map(|r| {
                (
                    r["med_list_codg"].clone(),
                    Entry {
                        class: r["chrgitm_lv"].clone(),
                        cap: Some(&r["pric_uplmt_amt"])
                            .filter(|c| !c.is_empty())
                            .map(|c| fen(c)),
                        selfpay: ratio(&r["selfpay_prop"]),
                    },
                )
            })
            .collect();
    let mut parts = [0i64; 4];
    let mut medfee = 0;
    for line in bill["lines"].as_array().unwrap() {
        let entry = &catalogue[line["code"].as_str().unwrap()];
        let cnt = line["cnt"].as_integer().unwrap();
        let pric = fen(line["pric"].as_str().unwrap());
        medfee += cnt * pric;
        for (p, v) in parts.iter_mut().zip(classify(entry, cnt, pric)) {
            *p += v;
        }
    }
    let inscp = parts[3];
    assert_eq!(parts.iter().sum::<i64>(), medfee);

    // The INSURED region's policy.
    let policy_path = fixtures.join(format!("policy/{}.toml", person.insuplc));
    let policy: toml::Value =
        toml::from_str(&std::fs::read_to_string(&policy_path).unwrap()).unwrap();
    let hosp_lv = at["hosp_lv"].as_str();
    let age = {
        let (by, bm, bd) = person.brdy;
        let (y, m, d) = today;
        y - by - i64::from((m, d) < (bm, bd))
    };
    let mut acc = person.acc.get(setting).copied().unwrap_or_default();
    let employee = person.insutype == "310";
    let (fund, acct_allowed, delta) =
        if hosp_lv == "pharmacy" && !policy["pharmacy_pooled_fund"]["value"].as_bool().unwrap() {
            // Pooled fund does not pay at pharmacies: account (employees) and cash.
            (0, employee, (0, 0, 0))
        } else {
            let rule = policy["rule"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| {
                    let has = |k: &str, v: &str| {
                        r[k].as_array()
                            .unwrap()
                            .iter()
                            .any(|x| x.as_str() == Some(v))
                    };
                    r["insutype"].as_str() == Some(person.insutype.as_str())
                        && r["setting"].as_str() == Some(setting)
                        && has("psn_type", &person.psn_type)
                        && has("hosp_lv", hosp_lv)
                        && r.get("age_min_years")
                            .is_none_or(|a| age >= a.as_integer().unwrap())
                        && r.get("age_below_years")
                            .is_none_or(|a| age < a.as_integer().unwrap())
                })
                .unwrap_or_else(|| panic!("no rule in {} for {hosp_lv}", policy_path.display()));
            let later = setting == "inpatient" && acc.admissions > 0;
            let deductible = match (rule.get("deductible_later"), later) {
                (Some(d), true) => fen(d["yuan"].as_str().unwrap()),
                _ => fen(rule["deductible_first"]["yuan"].as_str().unwrap()),
            };
            let remaining = if rule["deductible_scope"].as_str() == Some("annual") {
                (deductible - acc.deductible_used).max(0)
            } else {
                deductible
            };
            let dedc = remaining.min(inscp);
            let start = if rule["segment_basis"].as_str() == Some("year") {
                acc.inscp_sum
            } else {
                0
            };
            let cap_left = rule
                .get("annual_cap")
                .map(|c| (fen(c["yuan"].as_str().unwrap()) - acc.hifp_paid).max(0));
            let (hifp, beyond) = walk(&segments(rule), start + dedc, start + inscp, cap_left);
            let mut tier_pay = 0;
            if let Some(tier) = rule.get("tier") {
                let share = inscp - hifp;
                let (from, to) = if tier["basis"].as_str() == Some("beyond_basic_cap") {
                    (0, beyond)
                } else {
                    (acc.psn_inscp_share, acc.psn_inscp_share + share)
                };
                let d = fen(tier["deductible"]["yuan"].as_str().unwrap());
                let tier_cap = tier
                    .get("annual_cap")
                    .map(|c| (fen(c["yuan"].as_str().unwrap()) - acc.tier_paid).max(0));
                tier_pay = walk(&segments(tier), from.max(d) - d, to.max(d) - d, tier_cap).0;
            }
            (
                hifp + tier_pay,
                rule["acct_allowed"].as_bool().unwrap(),
                (dedc, hifp, tier_pay),
            )
        };
    let (dedc, hifp, tier_pay) = delta;
    acc.deductible_used += dedc;
    acc.inscp_sum += inscp;
    acc.hifp_paid += hifp;
    acc.tier_paid += tier_pay;
    acc.psn_inscp_share += inscp - hifp;
    if setting == "inpatient" {
        acc.admissions += 1;
    }
    person.acc.insert(setting.to_owned(), acc);
    let psn_part = medfee - fund;
    let acct = if acct_allowed {
        person.balance.min(psn_part)
    } else {
        0
    };
    person.balance -= acct;
    [medfee, fund, acct, psn_part - acct]
}

/// Today's date in Asia/Shanghai (UTC+8, no daylight saving).
pub fn shanghai_today() -> (i64, i64, i64) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let days = i64::try_from((secs + 8 * 3600) / 86_400).unwrap();
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod checks {
    use super::*;

    #[test]
    fn the_oracle_arithmetic_matches_hand_figures() {
        // medical-settlement.md §5.2: 12028.48 × 0.84 = 10103.9232 → 10103.92.
        assert_eq!(mul_half_up(1_202_848, ratio("0.84")), 1_010_392);
        assert_eq!(mul_half_up(3, ratio("0.5")), 2);
        assert_eq!(div_half_up(100, ratio("0.3")), 333);
        // §5.4: Beijing in-service level-3 inpatient, in scope 47000, deductible 1300:
        // (30000-1300)×.85 + 10000×.90 + 7000×.95 = 40045.00.
        let bands = [
            (Some(3_000_000), ratio("0.85")),
            (Some(4_000_000), ratio("0.90")),
            (None, ratio("0.95")),
        ];
        assert_eq!(walk(&bands, 130_000, 4_700_000, None), (4_004_500, 0));
        assert_eq!(fen("3560.25"), 356_025);
    }
}
