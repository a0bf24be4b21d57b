//! Property tests over random bills, persons and interleavings (settle, cancel 2208, reverse
//! 2601, resend, two settlements of one person at once, void-then-late), on SQLite and
//! PostgreSQL. After EVERY operation:
//! - the ledger verifies (balances = replay of the journal, each posting balanced, per region
//!   debits = credits);
//! - no double payment: every settlement msgid has exactly one settlement record, and the ledger
//!   holds exactly (openings + settlements + cancellations) posted postings;
//! - no accumulator drift: 5206 equals, field by field, the sums over the person's LIVE
//!   settlements of the replies' `act_pay_dedc`, `inscp_scp_amt` and `hifp_pay`;
//! - the personal account (1101 `balc`) equals the opening balance (fixtures/persons/cards.csv)
//!   minus the live settlements' `acct_pay`.
//!
//! The expected values come from the model kept here, not from the code under test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::inconsistent_digit_grouping)]

mod common;
mod service_support;

use std::collections::HashMap;

use common::{BOTH, Db};
use proptest::prelude::*;
use serde_json::{Value, json};
use service_support::{Harness, check_identities, envelope, fen};

const FIX: &str = "H11010500001";
/// (psn_no, card, opening balance fen) of the Beijing employees in fixtures/persons/cards.csv.
const PERSONS: [(&str, &str, i64); 3] = [
    ("11000000000000000001", "B10020030", 3560_25),
    ("11000000000000000002", "B10020031", 15230_80),
    ("11000000000000000003", "B10020032", 12_34),
];
/// 甲, 乙 10 %, 乙 with a 12.00 cap, 丙 (fixtures/catalogue/110000.csv).
const CODES: [&str; 4] = [
    "XJ01CAA001A000000007919",
    "XC10AAA005A000000039595",
    "XJ01DDA006A000000047514",
    "XM01AEA011A000000087109",
];
/// Non-zero opening balances in cards.csv (each one posting at import).
const OPENINGS: u64 = 5;

#[derive(Debug, Clone)]
enum Op {
    Settle {
        person: usize,
        lines: Vec<(usize, u32, i64)>,
        acct: bool,
    },
    Cancel {
        pick: usize,
    },
    Reverse {
        pick: usize,
    },
    Resend {
        pick: usize,
    },
    Concurrent {
        person: usize,
        lines: Vec<(usize, u32, i64)>,
    },
    VoidThenLate {
        person: usize,
    },
}

fn lines() -> impl Strategy<Value = Vec<(usize, u32, i64)>> {
    prop::collection::vec((0..CODES.len(), 1..20u32, 1_00..900_00i64), 1..4)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, lines(), any::<bool>()).prop_map(|(person, lines, acct)| Op::Settle { person, lines, acct }),
        2 => any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        2 => any::<usize>().prop_map(|pick| Op::Reverse { pick }),
        1 => any::<usize>().prop_map(|pick| Op::Resend { pick }),
        1 => (0..3usize, lines()).prop_map(|(person, lines)| Op::Concurrent { person, lines }),
        1 => (0..3usize).prop_map(|person| Op::VoidThenLate { person }),
    ]
}

struct Settled {
    person: usize,
    mdtrt_id: String,
    envelope: Value,
    output: Value,
    live: bool,
}

struct Model {
    next: u32,
    settled: Vec<Settled>,
    cancellations: u64,
}

impl Model {
    fn msgid(&mut self) -> String {
        self.next += 1;
        format!(
            "{FIX}20261130{:06}{:04}",
            self.next / 10_000,
            self.next % 10_000
        )
    }
}

fn env(infno: &str, msgid: &str, input: Value) -> Value {
    envelope(infno, msgid, FIX, "110000", input)
}

/// 2201 + 2204; returns (mdtrt_id, the 2207 envelope).
async fn prepare(
    h: &Harness,
    m: &mut Model,
    person: usize,
    lines: &[(usize, u32, i64)],
    acct: bool,
) -> (String, Value) {
    let psn = PERSONS[person].0;
    let reg = h
        .ok(&env(
            "2201",
            &m.msgid(),
            json!({"data": {"psn_no": psn, "insutype": "310", "begntime": "2026-11-30 09:00:00"}}),
        ))
        .await;
    let mdtrt_id = reg["data"]["mdtrt_id"].as_str().unwrap().to_owned();
    let mut total = 0;
    let detail: Vec<Value> = lines
        .iter()
        .enumerate()
        .map(|(i, &(code, cnt, pric))| {
            total += i64::from(cnt) * pric;
            json!({"feedetl_sn": format!("{i}"), "mdtrt_id": mdtrt_id, "psn_no": psn,
                "chrg_bchno": "B1", "med_list_codg": CODES[code],
                "det_item_fee_sumamt": yuan(i64::from(cnt) * pric), "cnt": cnt, "pric": yuan(pric)})
        })
        .collect();
    h.ok(&env("2204", &m.msgid(), json!({"feedetail": detail})))
        .await;
    let settle = env(
        "2207",
        &m.msgid(),
        json!({"data": {"psn_no": psn, "mdtrt_id": mdtrt_id,
        "medfee_sumamt": yuan(total), "insutype": "310", "acct_used_flag": if acct { "1" } else { "0" },
        "med_type": "11"}}),
    );
    (mdtrt_id, settle)
}

fn yuan(fen: i64) -> String {
    format!("{}.{:02}", fen / 100, fen % 100)
}

async fn check(h: &Harness, m: &mut Model) {
    h.verify().await;
    let report = h.ledger.verify().await.unwrap();
    let settlements = u64::try_from(m.settled.len()).unwrap();
    assert_eq!(
        report.postings_posted,
        OPENINGS + settlements + m.cancellations
    );
    for s in &m.settled {
        let msgid = s.envelope["msgid"].as_str().unwrap();
        assert_eq!(h.medical.settlements_made_by(msgid).await.unwrap(), 1);
    }
    for (p, (psn, card, opening)) in PERSONS.iter().enumerate() {
        let (cum_msgid, info_msgid) = (m.msgid(), m.msgid());
        let live = || m.settled.iter().filter(move |s| s.person == p && s.live);
        let sum = |field: &str| {
            live()
                .map(|s| fen(&s.output["setlinfo"][field]))
                .sum::<i64>()
        };
        let cum = h
            .ok(&env("5206", &cum_msgid, json!({"data": {"psn_no": psn}})))
            .await;
        let got: HashMap<String, i64> = cum["cuminfo"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["cum_type_code"].as_str().unwrap().to_owned(),
                    fen(&c["cum"]),
                )
            })
            .collect();
        let field = |name: &str| got.get(name).copied().unwrap_or(0);
        assert_eq!(
            field("outpatient.deductible_used"),
            sum("act_pay_dedc"),
            "{psn}"
        );
        assert_eq!(field("outpatient.inscp_sum"), sum("inscp_scp_amt"), "{psn}");
        assert_eq!(field("outpatient.hifp_paid"), sum("hifp_pay"), "{psn}");
        let info = h
            .ok(&env(
                "1101",
                &info_msgid,
                json!({"data": {"mdtrt_cert_type": "03", "mdtrt_cert_no": card}}),
            ))
            .await;
        assert_eq!(
            fen(&info["insuinfo"][0]["balc"]),
            opening - sum("acct_pay"),
            "{psn}"
        );
    }
}

async fn apply(h: &Harness, m: &mut Model, op: Op) {
    match op {
        Op::Settle {
            person,
            lines,
            acct,
        } => {
            let (mdtrt_id, settle) = prepare(h, m, person, &lines, acct).await;
            let output = h.ok(&settle).await;
            check_identities(&output);
            m.settled.push(Settled {
                person,
                mdtrt_id,
                envelope: settle,
                output,
                live: true,
            });
        }
        Op::Concurrent { person, lines } => {
            let (a_id, a) = prepare(h, m, person, &lines, true).await;
            let (b_id, b) = prepare(h, m, person, &lines, true).await;
            let (oa, ob) = tokio::join!(h.ok(&a), h.ok(&b));
            m.settled.push(Settled {
                person,
                mdtrt_id: a_id,
                envelope: a,
                output: oa,
                live: true,
            });
            m.settled.push(Settled {
                person,
                mdtrt_id: b_id,
                envelope: b,
                output: ob,
                live: true,
            });
        }
        Op::Cancel { pick } | Op::Reverse { pick } if m.settled.is_empty() => {
            let _ = pick;
        }
        Op::Cancel { pick } => {
            let index = pick % m.settled.len();
            let s = &m.settled[index];
            let input = json!({"data": {"setl_id": s.output["setlinfo"]["setl_id"], "mdtrt_id": s.mdtrt_id,
                "psn_no": PERSONS[s.person].0}});
            let cancel = env("2208", &m.msgid(), input);
            if m.settled[index].live {
                h.ok(&cancel).await;
                m.settled[index].live = false;
                m.cancellations += 1;
            } else {
                h.refused(&cancel, "E2305").await;
            }
        }
        Op::Reverse { pick } => {
            let index = pick % m.settled.len();
            let s = &m.settled[index];
            let input = json!({"data": {"psn_no": PERSONS[s.person].0,
                "omsgid": s.envelope["msgid"], "oinfno": "2207"}});
            let out = h.ok(&env("2601", &m.msgid(), input)).await;
            if m.settled[index].live {
                assert_eq!(out["data"]["rslt"], "reversed");
                m.settled[index].live = false;
                m.cancellations += 1;
            } else {
                assert_eq!(out["data"]["rslt"], "already_reversed");
            }
        }
        Op::Resend { pick } => {
            if let Some(s) = m.settled.get(pick % m.settled.len().max(1)) {
                assert_eq!(h.ok(&s.envelope).await, s.output);
            }
        }
        Op::VoidThenLate { person } => {
            let late = m.msgid();
            let void =
                json!({"data": {"psn_no": PERSONS[person].0, "omsgid": late, "oinfno": "2207"}});
            assert_eq!(
                h.ok(&env("2601", &m.msgid(), void)).await["data"]["rslt"],
                "voided"
            );
            let (_, mut settle) = prepare(h, m, person, &[(0, 1, 10_00)], false).await;
            settle["msgid"] = json!(late);
            h.refused(&settle, "E1007").await;
        }
    }
}

fn run(db: Db, ops: Vec<Op>) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let h = Harness::new(db).await;
        let mut m = Model {
            next: 0,
            settled: Vec::new(),
            cancellations: 0,
        };
        for op in ops {
            apply(&h, &mut m, op).await;
            check(&h, &mut m).await;
        }
        h.finish().await;
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn random_interleavings_keep_ledger_accumulators_and_accounts_exact(
        ops in prop::collection::vec(op(), 1..14)
    ) {
        for db in BOTH {
            run(db, ops.clone());
        }
    }
}

/// A fee upload (2204) under a msgid already recorded for another person's upload is refused
/// (E1006) and writes nothing, and the fresh upload in flight beside it is written. On PostgreSQL
/// the money-free writer first writes a batch in one statement that commits on its own; the
/// recorded msgid makes that statement fail on the message's primary key, and the batch is then
/// decided inside a transaction (medical/store.rs `write_fresh`). Each upload is checked through
/// what follows it: a 2207 of exactly its lines, or the same line uploaded again.
#[test]
fn a_fee_upload_under_a_recorded_msgid_writes_nothing_and_spoils_no_other() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for db in BOTH {
        runtime.block_on(async {
            let h = Harness::new(db).await;
            let mut visits = Vec::new();
            for (index, (psn, _, _)) in PERSONS.iter().enumerate() {
                let reg = h
                    .ok(&env(
                        "2201",
                        &format!("REG000{index}"),
                        json!({"data": {"psn_no": psn, "insutype": "310",
                            "begntime": "2026-11-30 09:00:00"}}),
                    ))
                    .await;
                visits.push(reg["data"]["mdtrt_id"].as_str().unwrap().to_owned());
            }
            // One line of 2 × 15.00 on person `p`'s visit.
            let upload = |p: usize, msgid: &str| {
                env(
                    "2204",
                    msgid,
                    json!({"feedetail": [{"feedetl_sn": "1",
                    "mdtrt_id": visits[p], "psn_no": PERSONS[p].0, "chrg_bchno": "B1",
                    "med_list_codg": CODES[0], "det_item_fee_sumamt": "30.00", "cnt": 2,
                    "pric": "15.00"}]}),
                )
            };
            let settle = |p: usize, msgid: &str| {
                env(
                    "2207",
                    msgid,
                    json!({"data": {"psn_no": PERSONS[p].0,
                    "mdtrt_id": visits[p], "medfee_sumamt": "30.00", "insutype": "310",
                    "acct_used_flag": "0", "med_type": "11"}}),
                )
            };
            h.ok(&upload(0, "FEE0001")).await;
            let (reused, fresh) = (upload(1, "FEE0001"), upload(2, "FEE0002"));
            tokio::join!(h.refused(&reused, "E1006"), h.ok(&fresh));
            // Person 2's line was written: its 2207 settles 30.00.
            let output = h.ok(&settle(2, "SET0002")).await;
            assert_eq!(fen(&output["setlinfo"]["medfee_sumamt"]), 30_00, "{db:?}");
            // Person 1's was not: the same line goes through under a new msgid, once.
            h.ok(&upload(1, "FEE0003")).await;
            let output = h.ok(&settle(1, "SET0001")).await;
            assert_eq!(fen(&output["setlinfo"]["medfee_sumamt"]), 30_00, "{db:?}");
            h.finish().await;
        });
    }
}
