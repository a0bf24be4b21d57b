//! What the console's pages show, read from the switch's own tables (no personal data: no
//! psn_no, name, ID number or clear PAN is selected here).

use super::Console;
use super::users::ConsoleError;
use crate::store::dispatch;

/// A recent settlement (2207/2304).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SettlementRow {
    pub setl_id: String,
    pub fixmedins_code: String,
    pub insuplc_admdvs: i64,
    pub setl_date: String,
    pub medfee_sumamt_fen: i64,
    pub fund_pay_sumamt_fen: i64,
    pub acct_pay_fen: i64,
    pub psn_cash_pay_fen: i64,
    /// 'C' cancelled, 'R' reversed, '' standing.
    pub cancel_kind: String,
}

/// A recent card payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PaymentRow {
    pub txn_id: String,
    pub kind: String,
    pub bank_code: String,
    pub merchant_id: String,
    pub pan_masked: String,
    pub amount_fen: i64,
    pub status: String,
    pub business_date: String,
}

/// One clearing position: this node toward a counterpart region, per window and fund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PositionRow {
    pub window_id: i64,
    pub counter_admdvs: i64,
    pub fund_pay_type: i64,
    pub amount_fen: i64,
}

/// A reversal not yet acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReversalRow {
    /// `payment 0400` or `region message`.
    pub what: &'static str,
    pub id: String,
    pub counterpart: String,
    pub state: String,
    pub attempts: i64,
}

impl Console {
    pub(crate) async fn recent_settlements(&self) -> Result<Vec<SettlementRow>, ConsoleError> {
        type Row = (
            String,
            String,
            i64,
            String,
            i64,
            i64,
            i64,
            i64,
            Option<String>,
        );
        let rows: Vec<Row> = dispatch!(&self.store, pool => {
            sqlx::query_as(
                "SELECT s.setl_id, s.fixmedins_code, s.insuplc_admdvs, s.setl_date, \
                 s.medfee_sumamt_fen, s.fund_pay_sumamt_fen, s.acct_pay_fen, s.psn_cash_pay_fen, \
                 c.kind FROM settlements s LEFT JOIN settlement_cancels c ON c.setl_id = s.setl_id \
                 ORDER BY s.setl_date DESC, s.setl_id DESC LIMIT $1",
            )
            .bind(self.options.recent_rows)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| SettlementRow {
                setl_id: r.0,
                fixmedins_code: r.1,
                insuplc_admdvs: r.2,
                setl_date: r.3,
                medfee_sumamt_fen: r.4,
                fund_pay_sumamt_fen: r.5,
                acct_pay_fen: r.6,
                psn_cash_pay_fen: r.7,
                cancel_kind: r.8.unwrap_or_default(),
            })
            .collect())
    }

    /// Settlements per day (setl_date), `(day, count, medfee_sumamt fen)`, last `chart_days`.
    pub(crate) async fn settlements_per_day(
        &self,
    ) -> Result<Vec<(String, i64, i64)>, ConsoleError> {
        let mut rows: Vec<(String, i64, i64)> = dispatch!(&self.store, pool => {
            sqlx::query_as(
                "SELECT setl_date, COUNT(*), CAST(COALESCE(SUM(medfee_sumamt_fen), 0) AS BIGINT) \
                 FROM settlements GROUP BY setl_date ORDER BY setl_date DESC LIMIT $1",
            )
            .bind(self.options.chart_days)
            .fetch_all(pool)
            .await?
        });
        rows.reverse();
        Ok(rows)
    }

    pub(crate) async fn recent_payments(&self) -> Result<Vec<PaymentRow>, ConsoleError> {
        type Row = (String, String, String, String, String, i64, String, String);
        let rows: Vec<Row> = dispatch!(&self.store, pool => {
            sqlx::query_as(
                "SELECT txn_id, kind, bank_code, merchant_id, pan_masked, amount_fen, status, \
                 business_date FROM pay_txns ORDER BY created_at_ms DESC LIMIT $1",
            )
            .bind(self.options.recent_rows)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|r| PaymentRow {
                txn_id: r.0,
                kind: r.1,
                bank_code: r.2,
                merchant_id: r.3,
                pan_masked: r.4,
                amount_fen: r.5,
                status: r.6,
                business_date: r.7,
            })
            .collect())
    }

    /// Net positions of the last windows with events, per counterpart region and fund.
    pub(crate) async fn positions(&self) -> Result<Vec<PositionRow>, ConsoleError> {
        let rows: Vec<(i64, i64, i64, i64)> = dispatch!(&self.store, pool => {
            sqlx::query_as(
                "SELECT window_id, counter_admdvs, fund_pay_type, \
                 CAST(SUM(amount_fen) AS BIGINT) FROM region_events \
                 GROUP BY window_id, counter_admdvs, fund_pay_type \
                 ORDER BY window_id DESC, counter_admdvs, fund_pay_type LIMIT 60",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(
                |(window_id, counter_admdvs, fund_pay_type, amount_fen)| PositionRow {
                    window_id,
                    counter_admdvs,
                    fund_pay_type,
                    amount_fen,
                },
            )
            .collect())
    }

    /// Closed clearing windows, newest first: `(window_id, closed_at_ms)`.
    pub(crate) async fn window_closes(&self) -> Result<Vec<(i64, i64)>, ConsoleError> {
        Ok(dispatch!(&self.store, pool => {
            sqlx::query_as(
                "SELECT window_id, closed_at_ms FROM region_windows ORDER BY window_id DESC LIMIT 20",
            )
            .fetch_all(pool)
            .await?
        }))
    }

    /// Reversals waiting: payment 0400s armed or pending, and inter-region messages (durable
    /// reversals among them) not yet acknowledged.
    pub(crate) async fn reversals_waiting(&self) -> Result<Vec<ReversalRow>, ConsoleError> {
        let payments: Vec<(String, String, String, i64)> = dispatch!(&self.store, pool => {
            sqlx::query_as(
                "SELECT txn_id, bank_code, state, attempts FROM pay_reversals \
                 WHERE state IN ('armed', 'pending') ORDER BY updated_at_ms LIMIT 100",
            )
            .fetch_all(pool)
            .await?
        });
        let messages: Vec<(String, i64, String)> = dispatch!(&self.store, pool => {
            sqlx::query_as(
                "SELECT o.msg_id, o.to_admdvs, o.path FROM region_outbox o \
                 WHERE NOT EXISTS (SELECT 1 FROM region_outbox_acks a WHERE a.msg_id = o.msg_id) \
                 ORDER BY o.created_at_ms LIMIT 100",
            )
            .fetch_all(pool)
            .await?
        });
        let mut out: Vec<ReversalRow> = payments
            .into_iter()
            .map(|(id, bank, state, attempts)| ReversalRow {
                what: "payment 0400",
                id,
                counterpart: bank,
                state,
                attempts,
            })
            .collect();
        out.extend(messages.into_iter().map(|(id, to, path)| ReversalRow {
            what: "region message",
            id,
            counterpart: to.to_string(),
            state: path,
            attempts: 0,
        }));
        Ok(out)
    }

    /// Reconciliation of the ledger: every balance recomputed from the journal and compared
    /// (`Ledger::verify`), as `(accounts, postings, problems as text)`.
    pub(crate) async fn ledger_check(&self) -> Result<(usize, u64, Vec<String>), ConsoleError> {
        let report = self
            .ledger
            .verify()
            .await
            .map_err(|_| ConsoleError::BadField("the ledger check failed"))?;
        Ok((
            report.accounts,
            report.postings_posted,
            report.problems.iter().map(|p| format!("{p:?}")).collect(),
        ))
    }

    /// Approved payments without a ledger posting (our side of payments reconciliation).
    pub(crate) async fn payments_unposted(&self) -> Result<Vec<String>, ConsoleError> {
        let rows: Vec<(String,)> = dispatch!(&self.store, pool => {
            sqlx::query_as(
                "SELECT txn_id FROM pay_txns WHERE status = 'approved' AND posting_id IS NULL \
                 ORDER BY created_at_ms LIMIT 100",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }
}
