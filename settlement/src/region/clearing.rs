//! Clearing between regions: positions per counter-region and fund accumulate in the ORIGIN
//! (treating) node's clearing windows; closing a window is an atomic cut (the window lock taken
//! exclusively: no settlement is between stamping and commit); a window's report is final at the
//! origin when every message of it was acknowledged and no intent of it is unresolved; the net
//! report across nodes sums to zero per fund; positions are checked against each region's
//! advance fund (预付金) with an alert.
//!
//! Source: anchors-switch.md §2.1 (Mojaloop windows OPEN → CLOSED → settled; net positions),
//! §6(d) ("Window close is an atomic cut … Invariant check: Σ net positions = 0 per window"),
//! medical-settlement.md §3.1 (先预付后清算, monthly clearing 3260/3261).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::medical::Medical;

use super::wire::{Figure, Report};
use super::{Node, RegionError, db};

impl Node {
    /// The open window of this node as origin. Errors: storage.
    pub async fn open_window(&self, med: &Medical) -> Result<i64, RegionError> {
        self.window.open(med.ledger()).await
    }

    /// Closes the open window (atomic cut: waits for every settlement stamped with it, in every
    /// process serving this node's database) and returns its id; the next one opens.
    pub async fn close_window(&self, med: &Medical) -> Result<i64, RegionError> {
        self.window.close(med.ledger()).await
    }

    /// This node's figures for `origin`'s `window`.
    pub async fn report(
        &self,
        med: &Medical,
        origin: u32,
        window: i64,
    ) -> Result<Report, RegionError> {
        let figures = db::sums(med.ledger(), Some(origin), Some(window))
            .await?
            .into_iter()
            .map(|(counter, fund_pay_type, fen)| Figure {
                node: self.me.code(),
                counter,
                fund_pay_type,
                fen,
            })
            .collect();
        let final_at_origin = origin == self.me.code()
            && window < self.open_window(med).await?
            && db::open_items(med.ledger(), window).await? == 0;
        Ok(Report {
            figures,
            final_at_origin,
        })
    }

    /// This node's net positions toward each counter-region (all windows) with the advance
    /// check: `alert` when the counter-region's claims here reach `alert_pct` of its advance.
    pub async fn positions(&self, med: &Medical) -> Result<Vec<Position>, RegionError> {
        let mut by_counter: BTreeMap<u32, (i64, BTreeMap<u32, i64>)> = BTreeMap::new();
        for (counter, fund, fen) in db::sums(med.ledger(), None, None).await? {
            let entry = by_counter.entry(counter).or_default();
            entry.0 += fen;
            entry.1.insert(fund, fen);
        }
        let mut out = Vec::new();
        for (counter, (net_fen, funds)) in by_counter {
            let region = crate::ids::Admdvs::from_code(counter)
                .ok()
                .and_then(|c| self.regions.get(c));
            let (advance_fen, alert_pct) =
                region.map_or((0, 100), |r| (r.advance_fen, r.alert_pct));
            let threshold = i128::from(advance_fen) * i128::from(alert_pct);
            let alert = net_fen > 0 && i128::from(net_fen) * 100 >= threshold;
            if alert {
                tracing::warn!(
                    counter,
                    net_fen,
                    advance_fen,
                    "预付金 alert: a region's position eats into its advance"
                );
            }
            out.push(Position {
                counter,
                net_fen,
                funds,
                advance_fen,
                alert,
            });
        }
        Ok(out)
    }
}

/// A node's position toward one counter-region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Counter-region node.
    pub counter: u32,
    /// Σ over funds: + the counter-region owes this node, − this node owes it, fen.
    pub net_fen: i64,
    /// Per fund, fen.
    pub funds: BTreeMap<u32, i64>,
    /// The counter-region's advance fund, fen.
    pub advance_fen: i64,
    /// The position reached the alert share of the advance.
    pub alert: bool,
}

/// The net settlement of one origin window across nodes: who owes whom, per fund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetReport {
    /// (creditor node, debtor node, fund, fen owed) from the creditors' books.
    pub owed: Vec<(u32, u32, u32, i64)>,
    /// Σ of every node's figures per fund (0 when both sides of every pair agree).
    pub sum_by_fund: BTreeMap<u32, i64>,
}

impl NetReport {
    /// Builds the net report from every node's figures for one window.
    pub fn from_reports(reports: &[Report]) -> NetReport {
        let mut owed: BTreeMap<(u32, u32, u32), i64> = BTreeMap::new();
        let mut sum_by_fund: BTreeMap<u32, i64> = BTreeMap::new();
        for figure in reports.iter().flat_map(|r| r.figures.iter()) {
            *sum_by_fund.entry(figure.fund_pay_type).or_default() += figure.fen;
            if figure.fen > 0 {
                *owed
                    .entry((figure.node, figure.counter, figure.fund_pay_type))
                    .or_default() += figure.fen;
            }
        }
        NetReport {
            owed: owed
                .into_iter()
                .map(|((a, b, f), v)| (a, b, f, v))
                .collect(),
            sum_by_fund,
        }
    }

    /// True if every fund sums to zero across the nodes.
    pub fn balanced(&self) -> bool {
        self.sum_by_fund.values().all(|v| *v == 0)
    }
}
