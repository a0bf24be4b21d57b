//! The clearing run of one closed window: the monthly 清分 between regions, in the style of
//! 3260/3261 (medical-settlement.md §1.2, §3.1: the 就医地 states the detail, it is confirmed,
//! provinces settle through the national platform, 先预付后清算).
//!
//! 1. The origin (treating) node states, per counter-region, every line of the window: one per
//!    transfer and fund, what the counter-region owes for it in the window (fen; negative for a
//!    reversal of an earlier window's claim; a transfer settled and reversed in the window, or
//!    posted by the insured node and reversed after the treating node abandoned it, nets to
//!    nothing and is left out).
//! 2. Each counter node confirms every line against its own events for that origin window (the
//!    same transfer and fund with the opposite sign: `cnfm_flag`), and nothing extra.
//! 3. Only when every counter-region confirmed does the origin post ONE settlement posting:
//!    each clearing account toward a counter-region is settled by what that region owes, against
//!    the region's national clearing account (`NHSA`: money through the national platform), with
//!    a `region_clearings` row and an outbox message per counter-region, in one transaction.
//! 4. Each counter node posts the mirror once (the posting id and the clearing row's key make a
//!    repeat take no effect) after checking the amounts against its own events again.
//!
//! A region's net position is the balance of its national clearing account (+ it receives, − it
//! pays); since every settlement is posted at both ends with opposite signs, the positions of
//! all regions sum to zero once the messages are delivered.
//!
//! Not in the reference: the inter-provincial interface itself (message names, fields, the
//! platform's role and the 预付金 top-up); this exchange is this project's design.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::account::{AccountFlags, AccountKind, AccountSpec};
use crate::fen::Fen;
use crate::ids::{AccountCode, Admdvs};
use crate::medical::Medical;
use crate::medical::ids::{now_ms, posting_id_of};
use crate::medical::rows::{Attachment, Row, Table, Value as Cell};
use crate::nhsa::ApiError;
use crate::posting::{Leg, Posting, Side};

use super::insured::{clearing, internal};
use super::{Node, RegionError, db};

/// Outbox path of the settlement message toward a counter node.
pub const SETTLE_PATH: &str = "/region/v1/clearing/settle";
/// Path of the confirmation request.
pub const CONFIRM_PATH: &str = "/region/v1/clearing/confirm";
/// Most lines in one statement toward one counter-region.
pub const STATEMENT_LINES_MAX: usize = 200_000;
/// Code of a region's national clearing account (its position toward the national platform).
pub const NATIONAL_CODE: &str = "NHSA";

/// One line of a window's statement: what the counter-region owes for one transfer and fund in
/// the window (fen; negative for a reversal of an earlier window's claim).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StatementLine {
    /// The transfer.
    pub xfer_id: String,
    /// `fund_pay_type` (310200 for the personal account).
    pub fund_pay_type: u32,
    /// Fen the counter-region owes the origin (negative: the origin owes it back).
    pub fen: i64,
}

/// `POST /region/v1/clearing/confirm`: the origin's statement toward the receiving node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConfirmRequest {
    /// Origin (treating) node.
    pub origin: u32,
    /// The origin's window.
    pub window_id: i64,
    /// Every line toward the receiving node.
    pub lines: Vec<StatementLine>,
}

/// A line the counter node does not confirm: the origin's figure and its own (0 if absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    /// The transfer.
    pub xfer_id: String,
    /// Fund.
    pub fund_pay_type: u32,
    /// As the origin states it (what the counter-region owes).
    pub origin_fen: i64,
    /// As the counter node's events say it (what it owes).
    pub counter_fen: i64,
}

/// The counter node's answer (3261 style: every line confirmed or the mismatches).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// Every line matched and nothing is missing.
    pub confirmed: bool,
    /// Lines confirmed.
    pub lines_confirmed: usize,
    /// Lines not confirmed, and lines the counter node has that the origin did not state.
    pub mismatches: Vec<Mismatch>,
}

/// An amount per fund (fen, signed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundFen {
    /// Fund.
    pub fund_pay_type: u32,
    /// Fen (+ the counter-region pays the origin).
    pub fen: i64,
}

/// `POST /region/v1/clearing/settle` (outbox body).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SettleRequest {
    /// Origin node.
    pub origin: u32,
    /// The origin's window.
    pub window_id: i64,
    /// What the receiving node pays the origin, per fund.
    pub amounts: Vec<FundFen>,
}

/// The outcome of a clearing run toward one counter-region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterRun {
    /// Counter node.
    pub counter: u32,
    /// Its confirmation.
    pub confirmation: Confirmation,
    /// What it owes per fund (settled if the run settled).
    pub amounts: Vec<FundFen>,
}

/// The outcome of a clearing run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClearingRun {
    /// The window.
    pub window_id: i64,
    /// Per counter-region.
    pub counters: Vec<CounterRun>,
    /// The settlement was posted (now, or by an earlier run of the same window).
    pub settled: bool,
}

/// A region's national clearing account.
pub fn national(region: Admdvs) -> Result<AccountSpec, RegionError> {
    Ok(AccountSpec {
        admdvs: region,
        kind: AccountKind::Clearing,
        code: AccountCode::parse(NATIONAL_CODE).map_err(|e| RegionError::Config(e.to_string()))?,
        flags: AccountFlags::default(),
    })
}

fn storage(error: impl std::fmt::Display) -> RegionError {
    RegionError::Storage(error.to_string())
}

/// Σ of `lines` per fund.
fn per_fund(lines: &[StatementLine]) -> Vec<FundFen> {
    let mut sums: BTreeMap<u32, i64> = BTreeMap::new();
    for line in lines {
        *sums.entry(line.fund_pay_type).or_default() += line.fen;
    }
    sums.into_iter()
        .filter(|(_, fen)| *fen != 0)
        .map(|(fund_pay_type, fen)| FundFen { fund_pay_type, fen })
        .collect()
}

/// Legs that settle `amounts` owed by/to `counter` in `me`'s books: the clearing account toward
/// the counter moves by each amount, the national account by their sum. `receiving` is true on
/// the origin (it receives what the counter owes), false on the counter node (it pays).
async fn settlement_legs(
    med: &Medical,
    me: Admdvs,
    counter: Admdvs,
    amounts: &[FundFen],
    receiving: bool,
) -> Result<(Vec<Leg>, i64), ApiError> {
    let mut legs = Vec::new();
    let mut net = 0i64;
    for a in amounts {
        // The origin's clearing account holds the claim as a debit balance: credit it to settle;
        // the counter's holds the payable as a credit balance: debit it.
        let side = match (receiving, a.fen > 0) {
            (true, true) | (false, false) => Side::Credit,
            _ => Side::Debit,
        };
        legs.push(Leg {
            account: med.account(clearing(me, counter, a.fund_pay_type)?).await?,
            side,
            amount: Fen::from_fen(a.fen.abs()).map_err(internal)?,
        });
        net = net
            .checked_add(a.fen)
            .ok_or_else(|| internal("amount overflow"))?;
    }
    if net != 0 {
        let side = match (receiving, net > 0) {
            (true, true) | (false, false) => Side::Debit,
            _ => Side::Credit,
        };
        legs.push(Leg {
            account: med.account(national(me).map_err(internal)?).await?,
            side,
            amount: Fen::from_fen(net.abs()).map_err(internal)?,
        });
    }
    Ok((legs, net))
}

fn clearing_row(origin: u32, window: i64, counter: u32, role: &str, amounts: &str) -> Row {
    Row {
        table: Table::RegionClearings,
        values: vec![
            Cell::I64(i64::from(origin)),
            Cell::I64(window),
            Cell::I64(i64::from(counter)),
            Cell::Text(role.to_owned()),
            Cell::Text(amounts.to_owned()),
            Cell::I64(now_ms()),
        ],
    }
}

/// The lines of `origin`'s `window` as this node's events state them, toward `counter`, in
/// the origin's sign (what the counter-region owes the origin).
async fn lines_of(
    med: &Medical,
    me: Admdvs,
    origin: u32,
    window: i64,
    counter: u32,
) -> Result<Vec<StatementLine>, RegionError> {
    let sign = if me.code() == origin { 1 } else { -1 };
    let mut lines: Vec<StatementLine> = db::window_lines(med.ledger(), origin, window, counter)
        .await?
        .into_iter()
        .map(|(xfer_id, fund_pay_type, fen)| StatementLine {
            xfer_id,
            fund_pay_type,
            fen: sign * fen,
        })
        .collect();
    lines.sort();
    if lines.len() > STATEMENT_LINES_MAX {
        return Err(RegionError::Storage("statement too long".to_owned()));
    }
    Ok(lines)
}

/// Compares the origin's statement with this node's own lines.
fn compare(stated: &[StatementLine], own: &[StatementLine]) -> Confirmation {
    let key = |l: &StatementLine| (l.xfer_id.clone(), l.fund_pay_type);
    let mine: BTreeMap<_, i64> = own.iter().map(|l| (key(l), l.fen)).collect();
    let theirs: BTreeMap<_, i64> = stated.iter().map(|l| (key(l), l.fen)).collect();
    let mut mismatches = Vec::new();
    let mut lines_confirmed = 0;
    for ((xfer_id, fund_pay_type), fen) in &theirs {
        let counter_fen = mine
            .get(&(xfer_id.clone(), *fund_pay_type))
            .copied()
            .unwrap_or(0);
        if counter_fen == *fen {
            lines_confirmed += 1;
        } else {
            mismatches.push(Mismatch {
                xfer_id: xfer_id.clone(),
                fund_pay_type: *fund_pay_type,
                origin_fen: *fen,
                counter_fen,
            });
        }
    }
    for ((xfer_id, fund_pay_type), fen) in &mine {
        if !theirs.contains_key(&(xfer_id.clone(), *fund_pay_type)) {
            mismatches.push(Mismatch {
                xfer_id: xfer_id.clone(),
                fund_pay_type: *fund_pay_type,
                origin_fen: 0,
                counter_fen: *fen,
            });
        }
    }
    Confirmation {
        // A statement listing one line twice is not confirmed either.
        confirmed: mismatches.is_empty() && stated.len() == theirs.len(),
        lines_confirmed,
        mismatches,
    }
}

impl Node {
    /// Runs the clearing of this node's closed, final `window` (see the module). Errors:
    /// `Refused` (the window is open or not final), `Unreachable`/`Unknown` (a counter node did
    /// not answer: nothing was posted, run again), storage.
    pub async fn clear_window(
        &self,
        med: &Medical,
        window: i64,
    ) -> Result<ClearingRun, RegionError> {
        let _run = self.xfers.lock(&format!("clearing\0{window}")).await?;
        let done = db::clearings(med.ledger(), self.me.code(), window).await?;
        if !done.is_empty() {
            // Settled by an earlier run (all counter-regions in one posting).
            let mut counters = Vec::new();
            for (counter, amounts) in done {
                counters.push(CounterRun {
                    counter,
                    confirmation: Confirmation {
                        confirmed: true,
                        lines_confirmed: 0,
                        mismatches: Vec::new(),
                    },
                    amounts: serde_json::from_str(&amounts).map_err(storage)?,
                });
            }
            return Ok(ClearingRun {
                window_id: window,
                counters,
                settled: true,
            });
        }
        let report = self.report(med, self.me.code(), window).await?;
        if !report.final_at_origin {
            return Err(RegionError::Refused(
                self.me,
                "E2502".to_owned(),
                format!("window {window} is open or not final yet (messages or intents open)"),
            ));
        }
        let counters: Vec<Admdvs> = self
            .regions
            .all()
            .iter()
            .map(|r| r.admdvs)
            .filter(|c| *c != self.me)
            .collect();
        let mut runs = Vec::new();
        for counter in &counters {
            let lines = lines_of(med, self.me, self.me.code(), window, counter.code()).await?;
            let amounts = per_fund(&lines);
            let confirmation = if lines.is_empty() {
                Confirmation {
                    confirmed: true,
                    lines_confirmed: lines.len(),
                    mismatches: Vec::new(),
                }
            } else {
                self.call(
                    *counter,
                    CONFIRM_PATH,
                    &ConfirmRequest {
                        origin: self.me.code(),
                        window_id: window,
                        lines,
                    },
                )
                .await?
            };
            runs.push(CounterRun {
                counter: counter.code(),
                confirmation,
                amounts,
            });
        }
        let all_confirmed = runs.iter().all(|r| r.confirmation.confirmed);
        if !all_confirmed {
            tracing::warn!(window, "clearing run: a counter-region did not confirm");
            return Ok(ClearingRun {
                window_id: window,
                counters: runs,
                settled: false,
            });
        }
        self.post_clearing(med, window, &runs)
            .await
            .map_err(|e| RegionError::Storage(e.to_string()))?;
        Ok(ClearingRun {
            window_id: window,
            counters: runs,
            settled: true,
        })
    }

    /// The origin's settlement posting, clearing rows and outbox messages (one transaction).
    async fn post_clearing(
        &self,
        med: &Medical,
        window: i64,
        todo: &[CounterRun],
    ) -> Result<(), ApiError> {
        let me = self.me;
        let mut legs = Vec::new();
        let mut rows = Vec::new();
        for run in todo {
            let counter = Admdvs::from_code(run.counter).map_err(internal)?;
            let amounts = serde_json::to_string(&run.amounts).map_err(internal)?;
            rows.push(clearing_row(me.code(), window, run.counter, "O", &amounts));
            if run.amounts.is_empty() {
                continue;
            }
            let (mut more, _) = settlement_legs(med, me, counter, &run.amounts, true).await?;
            legs.append(&mut more);
            let body = serde_json::to_string(&SettleRequest {
                origin: me.code(),
                window_id: window,
                amounts: run.amounts.clone(),
            })
            .map_err(internal)?;
            rows.push(db::outbox_row(
                &format!("clearing#{me}#{window}#{counter}"),
                run.counter,
                SETTLE_PATH,
                &body,
                window,
            ));
        }
        // Merge the national legs of all counters into one net leg per side.
        let legs = net_legs(legs);
        if legs.is_empty() {
            return db::write_rows(med.ledger(), rows).await.map_err(internal);
        }
        let posting = Posting {
            id: posting_id_of(&format!("clearing#{me}#{window}")),
            admdvs: me,
            legs,
            link: None,
        };
        med.ledger()
            .post_attached(
                posting,
                Arc::new(Attachment {
                    always: Vec::new(),
                    if_posted: rows,
                }),
            )
            .await
            .map(|_| ())
            .map_err(crate::medical::ledger_error)
    }

    /// `POST /region/v1/clearing/confirm` on the counter node.
    pub async fn confirm_statement(
        &self,
        med: &Medical,
        req: &ConfirmRequest,
    ) -> Result<Confirmation, RegionError> {
        if req.lines.len() > STATEMENT_LINES_MAX {
            return Err(RegionError::BadReply(self.me, "statement too long"));
        }
        let own = lines_of(med, self.me, req.origin, req.window_id, req.origin).await?;
        Ok(compare(&req.lines, &own))
    }

    /// `POST /region/v1/clearing/settle` on the counter node: the mirror posting, once.
    pub async fn settle_received(
        &self,
        med: &Medical,
        req: &SettleRequest,
    ) -> Result<(), ApiError> {
        let origin = Admdvs::from_code(req.origin).map_err(internal)?;
        let _run = self
            .xfers
            .lock(&format!("clearing\0{}\0{}", req.origin, req.window_id))
            .await
            .map_err(internal)?;
        let done = db::clearings(med.ledger(), req.origin, req.window_id)
            .await
            .map_err(internal)?;
        if done.contains_key(&self.me.code()) {
            return Ok(());
        }
        let own = lines_of(med, self.me, req.origin, req.window_id, req.origin)
            .await
            .map_err(internal)?;
        if per_fund(&own) != req.amounts {
            return Err(ApiError::CrossRegion(format!(
                "clearing of {} window {}: the amounts differ from this node's events",
                req.origin, req.window_id
            )));
        }
        let amounts = serde_json::to_string(&req.amounts).map_err(internal)?;
        let row = clearing_row(req.origin, req.window_id, self.me.code(), "C", &amounts);
        let (legs, _) = settlement_legs(med, self.me, origin, &req.amounts, false).await?;
        let legs = net_legs(legs);
        if legs.is_empty() {
            return db::write_rows(med.ledger(), vec![row])
                .await
                .map_err(internal);
        }
        let posting = Posting {
            id: posting_id_of(&format!(
                "clearing#{}#{}#{}#C",
                req.origin, req.window_id, self.me
            )),
            admdvs: self.me,
            legs,
            link: None,
        };
        med.ledger()
            .post_attached(
                posting,
                Arc::new(Attachment {
                    always: Vec::new(),
                    if_posted: vec![row],
                }),
            )
            .await
            .map(|_| ())
            .map_err(crate::medical::ledger_error)
    }

    /// This region's net position toward the national platform, fen (+ it receives, − it pays):
    /// the debit balance of its national clearing account. Errors: storage.
    pub async fn national_position(&self, med: &Medical) -> Result<i64, RegionError> {
        let account = med
            .ledger()
            .create_account(&national(self.me)?)
            .await
            .map_err(storage)?;
        let balance = med.ledger().balance(account.id).await.map_err(storage)?;
        Ok(-balance.credit_balance_fen())
    }
}

/// One leg per (account, side): the national account appears once per counter-region in the
/// legs built per counter; a posting carries it once, netted.
fn net_legs(legs: Vec<Leg>) -> Vec<Leg> {
    let mut by_account: BTreeMap<crate::AccountId, i64> = BTreeMap::new();
    let mut order = Vec::new();
    for leg in legs {
        let signed = match leg.side {
            Side::Debit => leg.amount.fen(),
            Side::Credit => -leg.amount.fen(),
        };
        if !by_account.contains_key(&leg.account) {
            order.push(leg.account);
        }
        *by_account.entry(leg.account).or_default() += signed;
    }
    order
        .into_iter()
        .filter_map(|account| {
            let net = by_account.get(&account).copied().unwrap_or(0);
            let amount = Fen::from_fen(net.abs()).ok()?;
            (net != 0).then_some(Leg {
                account,
                side: if net > 0 { Side::Debit } else { Side::Credit },
                amount,
            })
        })
        .collect()
}
