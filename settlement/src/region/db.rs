//! The region tables (migrations/*/0300_region.sql): row builders for the rows that ride with a
//! ledger posting (`Attachment`), the money-free writes (intents, voids, acknowledgements,
//! window closes: one transaction each, taking turns with the ledger writer on SQLite), and the
//! reads, written once for SQLite and PostgreSQL.

use sqlx::Row as _;

use crate::ledger::Ledger;
use crate::medical::ids::now_ms;
use crate::medical::rows::{Row, Table, Value as Cell, insert_rows};
use crate::store::dispatch;

use super::RegionError;

fn storage(error: impl std::fmt::Display) -> RegionError {
    RegionError::Storage(error.to_string())
}

/// Writes money-free rows in one transaction.
pub(crate) async fn write_rows(ledger: &Ledger, rows: Vec<Row>) -> Result<(), RegionError> {
    let gate = ledger.write_gate();
    let _turn = gate.enter().await;
    let mut tx = ledger.store().begin_write().await.map_err(storage)?;
    let refs: Vec<&Row> = rows.iter().collect();
    if let Err(error) = insert_rows(&mut tx, &refs).await {
        let _ = tx.rollback().await;
        return Err(storage(error));
    }
    tx.commit().await.map_err(storage)
}

/// A `region_xfers` row.
pub(crate) fn xfer_row(xfer_id: &str, state: &str, counter: u32, window: i64, detail: &str) -> Row {
    Row {
        table: Table::RegionXfers,
        values: vec![
            Cell::Text(xfer_id.to_owned()),
            Cell::Text(state.to_owned()),
            Cell::I64(i64::from(counter)),
            Cell::I64(window),
            Cell::Text(detail.to_owned()),
            Cell::I64(now_ms()),
        ],
    }
}

/// A `region_inbox` row.
pub(crate) fn inbox_row(
    xfer_id: &str,
    kind: &str,
    origin: u32,
    sha: &[u8; 32],
    reply: &str,
) -> Row {
    Row {
        table: Table::RegionInbox,
        values: vec![
            Cell::Text(xfer_id.to_owned()),
            Cell::Text(kind.to_owned()),
            Cell::I64(i64::from(origin)),
            Cell::Bytes(sha.to_vec()),
            Cell::Text(reply.to_owned()),
            Cell::I64(now_ms()),
        ],
    }
}

/// One clearing event (see `region_events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Event {
    pub origin: u32,
    pub window: i64,
    pub counter: u32,
    pub fund: u32,
    pub fen: i64,
}

/// A `region_events` row.
pub(crate) fn event_row(xfer_id: &str, kind: &str, e: Event) -> Row {
    Row {
        table: Table::RegionEvents,
        values: vec![
            Cell::Text(xfer_id.to_owned()),
            Cell::Text(kind.to_owned()),
            Cell::I64(i64::from(e.origin)),
            Cell::I64(e.window),
            Cell::I64(i64::from(e.counter)),
            Cell::I64(i64::from(e.fund)),
            Cell::I64(e.fen),
            Cell::I64(now_ms()),
        ],
    }
}

/// A `region_outbox` row.
pub(crate) fn outbox_row(msg_id: &str, to: u32, path: &str, body: &str, window: i64) -> Row {
    Row {
        table: Table::RegionOutbox,
        values: vec![
            Cell::Text(msg_id.to_owned()),
            Cell::I64(i64::from(to)),
            Cell::Text(path.to_owned()),
            Cell::Text(body.to_owned()),
            Cell::I64(window),
            Cell::I64(now_ms()),
        ],
    }
}

/// The open window: the last closed + 1 (1 on a fresh database).
pub(crate) async fn open_window(ledger: &Ledger) -> Result<i64, RegionError> {
    let sql = "SELECT COALESCE(MAX(window_id), 0) FROM region_windows";
    let last: i64 = dispatch!(ledger.store(), pool => {
        sqlx::query(sql).fetch_one(pool).await.map_err(storage)?.try_get(0).map_err(storage)?
    });
    Ok(last + 1)
}

/// States reached by a transfer on the treating side: (state, counter, window, detail).
pub(crate) async fn xfer_states(
    ledger: &Ledger,
    xfer_id: &str,
) -> Result<Vec<(String, u32, i64, String)>, RegionError> {
    let sql =
        "SELECT state, counter_admdvs, window_id, detail FROM region_xfers WHERE xfer_id = $1";
    let rows = dispatch!(ledger.store(), pool => {
        let rows = sqlx::query(sql).bind(xfer_id).fetch_all(pool).await.map_err(storage)?;
        rows.iter().map(|r| Ok((
            r.try_get::<String, _>(0)?,
            r.try_get::<i64, _>(1)?,
            r.try_get::<i64, _>(2)?,
            r.try_get::<String, _>(3)?,
        ))).collect::<Result<Vec<_>, sqlx::Error>>().map_err(storage)?
    });
    rows.into_iter()
        .map(|(s, c, w, d)| Ok((s, u32::try_from(c).map_err(storage)?, w, d)))
        .collect()
}

/// Intents older than `before_ms` with no outcome: (xfer_id, counter, window, detail).
pub(crate) async fn stale_intents(
    ledger: &Ledger,
    before_ms: i64,
) -> Result<Vec<(String, u32, i64, String)>, RegionError> {
    let sql = "SELECT i.xfer_id, i.counter_admdvs, i.window_id, i.detail FROM region_xfers i \
               WHERE i.state = 'I' AND i.created_at_ms < $1 AND NOT EXISTS \
               (SELECT 1 FROM region_xfers o WHERE o.xfer_id = i.xfer_id AND o.state <> 'I') \
               LIMIT 256";
    let rows = dispatch!(ledger.store(), pool => {
        let rows = sqlx::query(sql).bind(before_ms).fetch_all(pool).await.map_err(storage)?;
        rows.iter().map(|r| Ok((
            r.try_get::<String, _>(0)?,
            r.try_get::<i64, _>(1)?,
            r.try_get::<i64, _>(2)?,
            r.try_get::<String, _>(3)?,
        ))).collect::<Result<Vec<_>, sqlx::Error>>().map_err(storage)?
    });
    rows.into_iter()
        .map(|(x, c, w, d)| Ok((x, u32::try_from(c).map_err(storage)?, w, d)))
        .collect()
}

/// Inbox rows of a transfer: (kind, request_sha256, reply).
pub(crate) async fn inbox(
    ledger: &Ledger,
    xfer_id: &str,
) -> Result<Vec<(String, Vec<u8>, String)>, RegionError> {
    let sql = "SELECT kind, request_sha256, reply FROM region_inbox WHERE xfer_id = $1";
    Ok(dispatch!(ledger.store(), pool => {
        let rows = sqlx::query(sql).bind(xfer_id).fetch_all(pool).await.map_err(storage)?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>().map_err(storage)?
    }))
}

/// The events a transfer recorded with `kind` on this node.
pub(crate) async fn events_of(
    ledger: &Ledger,
    xfer_id: &str,
    kind: &str,
) -> Result<Vec<Event>, RegionError> {
    let sql = "SELECT origin_admdvs, window_id, counter_admdvs, fund_pay_type, amount_fen \
               FROM region_events WHERE xfer_id = $1 AND kind = $2 ORDER BY fund_pay_type";
    let rows: Vec<(i64, i64, i64, i64, i64)> = dispatch!(ledger.store(), pool => {
        let rows = sqlx::query(sql).bind(xfer_id).bind(kind).fetch_all(pool).await
            .map_err(storage)?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?,
            r.try_get(4)?))).collect::<Result<Vec<_>, sqlx::Error>>().map_err(storage)?
    });
    rows.into_iter()
        .map(|(o, w, c, f, fen)| {
            Ok(Event {
                origin: u32::try_from(o).map_err(storage)?,
                window: w,
                counter: u32::try_from(c).map_err(storage)?,
                fund: u32::try_from(f).map_err(storage)?,
                fen,
            })
        })
        .collect()
}

/// Unacknowledged outbox messages, oldest first: (msg_id, to, path, body).
pub(crate) async fn pending_outbox(
    ledger: &Ledger,
    limit: i64,
) -> Result<Vec<(String, u32, String, String)>, RegionError> {
    let sql = "SELECT m.msg_id, m.to_admdvs, m.path, m.body FROM region_outbox m \
               WHERE NOT EXISTS (SELECT 1 FROM region_outbox_acks a WHERE a.msg_id = m.msg_id) \
               ORDER BY m.created_at_ms LIMIT $1";
    let rows: Vec<(String, i64, String, String)> = dispatch!(ledger.store(), pool => {
        let rows = sqlx::query(sql).bind(limit).fetch_all(pool).await.map_err(storage)?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>().map_err(storage)?
    });
    rows.into_iter()
        .map(|(m, t, p, b)| Ok((m, u32::try_from(t).map_err(storage)?, p, b)))
        .collect()
}

/// Counts of unacknowledged outbox messages and of unresolved intents, all windows.
pub(crate) async fn open_counts(ledger: &Ledger) -> Result<(i64, i64), RegionError> {
    let sql = "SELECT (SELECT COUNT(*) FROM region_outbox m WHERE NOT EXISTS \
               (SELECT 1 FROM region_outbox_acks a WHERE a.msg_id = m.msg_id)), \
               (SELECT COUNT(*) FROM region_xfers i WHERE i.state = 'I' AND NOT EXISTS \
               (SELECT 1 FROM region_xfers o WHERE o.xfer_id = i.xfer_id AND o.state <> 'I'))";
    Ok(dispatch!(ledger.store(), pool => {
        let row = sqlx::query(sql).fetch_one(pool).await.map_err(storage)?;
        (row.try_get::<i64, _>(0).map_err(storage)?, row.try_get::<i64, _>(1).map_err(storage)?)
    }))
}

/// Records acknowledgements of outbox messages; one already recorded (another process of this
/// node delivered it too) is left as it is.
pub(crate) async fn ack_outbox(
    ledger: &Ledger,
    msg_ids: &[String],
    acked_at_ms: i64,
) -> Result<(), RegionError> {
    let sql = "INSERT INTO region_outbox_acks (msg_id, acked_at_ms) VALUES ($1, $2) \
               ON CONFLICT (msg_id) DO NOTHING";
    let gate = ledger.write_gate();
    let _turn = gate.enter().await;
    let mut tx = ledger.store().begin_write().await.map_err(storage)?;
    let inserted: Result<(), sqlx::Error> = async {
        dispatch!(&mut tx, t => {
            for msg_id in msg_ids {
                sqlx::query(sql).bind(msg_id).bind(acked_at_ms).execute(&mut **t).await?;
            }
        });
        Ok(())
    }
    .await;
    if let Err(error) = inserted {
        let _ = tx.rollback().await;
        return Err(storage(error));
    }
    tx.commit().await.map_err(storage)
}

/// Count of unacknowledged outbox messages and unresolved intents of `window` (0 = final).
pub(crate) async fn open_items(ledger: &Ledger, window: i64) -> Result<i64, RegionError> {
    let sql = "SELECT (SELECT COUNT(*) FROM region_outbox m WHERE m.window_id = $1 AND NOT EXISTS \
               (SELECT 1 FROM region_outbox_acks a WHERE a.msg_id = m.msg_id)) + \
               (SELECT COUNT(*) FROM region_xfers i WHERE i.window_id = $1 AND i.state = 'I' \
               AND NOT EXISTS (SELECT 1 FROM region_xfers o WHERE o.xfer_id = i.xfer_id \
               AND o.state <> 'I'))";
    Ok(dispatch!(ledger.store(), pool => {
        sqlx::query(sql).bind(window).fetch_one(pool).await.map_err(storage)?
            .try_get::<i64, _>(0).map_err(storage)?
    }))
}

/// Σ events per (counter, fund) of `origin`'s `window` (all windows if `None`).
pub(crate) async fn sums(
    ledger: &Ledger,
    origin: Option<u32>,
    window: Option<i64>,
) -> Result<Vec<(u32, u32, i64)>, RegionError> {
    let sql = "SELECT counter_admdvs, fund_pay_type, CAST(SUM(amount_fen) AS BIGINT) FROM region_events \
               WHERE ($1 < 0 OR origin_admdvs = $1) AND ($2 < 0 OR window_id = $2) \
               GROUP BY counter_admdvs, fund_pay_type ORDER BY counter_admdvs, fund_pay_type";
    let origin = origin.map_or(-1, i64::from);
    let window = window.unwrap_or(-1);
    let rows: Vec<(i64, i64, i64)> = dispatch!(ledger.store(), pool => {
        let rows = sqlx::query(sql).bind(origin).bind(window).fetch_all(pool).await
            .map_err(storage)?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>().map_err(storage)?
    });
    rows.into_iter()
        .map(|(c, f, s)| {
            Ok((
                u32::try_from(c).map_err(storage)?,
                u32::try_from(f).map_err(storage)?,
                s,
            ))
        })
        .collect()
}

/// The lines of `origin`'s `window` toward `counter` in this node's events: (xfer_id,
/// fund_pay_type, Σ fen) in this node's sign, transfers whose events cancel out in the window
/// (settled and reversed in it, or posted by the insured node and reversed after the treating
/// node abandoned them) left out.
pub(crate) async fn window_lines(
    ledger: &Ledger,
    origin: u32,
    window: i64,
    counter: u32,
) -> Result<Vec<(String, u32, i64)>, RegionError> {
    let sql = "SELECT xfer_id, fund_pay_type, CAST(SUM(amount_fen) AS BIGINT) \
               FROM region_events WHERE origin_admdvs = $1 AND window_id = $2 \
               AND counter_admdvs = $3 GROUP BY xfer_id, fund_pay_type \
               HAVING SUM(amount_fen) <> 0";
    let rows: Vec<(String, i64, i64)> = dispatch!(ledger.store(), pool => {
        let rows = sqlx::query(sql).bind(i64::from(origin)).bind(window)
            .bind(i64::from(counter)).fetch_all(pool).await.map_err(storage)?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>().map_err(storage)?
    });
    rows.into_iter()
        .map(|(x, f, fen)| Ok((x, u32::try_from(f).map_err(storage)?, fen)))
        .collect()
}

/// Clearing rows of `origin`'s `window` on this node: counter → settled amounts (JSON).
pub(crate) async fn clearings(
    ledger: &Ledger,
    origin: u32,
    window: i64,
) -> Result<std::collections::BTreeMap<u32, String>, RegionError> {
    let sql = "SELECT counter_admdvs, amounts FROM region_clearings \
               WHERE origin_admdvs = $1 AND window_id = $2";
    let rows: Vec<(i64, String)> = dispatch!(ledger.store(), pool => {
        let rows = sqlx::query(sql).bind(i64::from(origin)).bind(window).fetch_all(pool).await
            .map_err(storage)?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>().map_err(storage)?
    });
    rows.into_iter()
        .map(|(c, a)| Ok((u32::try_from(c).map_err(storage)?, a)))
        .collect()
}

/// A settlement (or a cancellation of one) of an institution in a month, for 3260.
#[derive(Debug, Clone)]
pub(crate) struct MonthRow {
    pub setl_id: String,
    pub mdtrt_id: String,
    pub psn_no: String,
    pub insuplc_admdvs: u32,
    pub medfee_fen: i64,
    pub fund_fen: i64,
    pub acct_fen: i64,
    /// `setlinfo.setl_time` of the settlement.
    pub setl_time: String,
    /// The cancelling message, on a cancellation row.
    pub cancel_msgid: Option<String>,
    /// When the cancellation was recorded, Unix ms (0 if unknown).
    pub cancel_ms: i64,
}

/// Settlements of `fixmedins` dated in `month` (`yyyy-MM`) and cancellations dated in it.
pub(crate) async fn month_settlements(
    ledger: &Ledger,
    fixmedins: &str,
    month: &str,
) -> Result<Vec<MonthRow>, RegionError> {
    let (first, last) = (format!("{month}-01"), format!("{month}-31"));
    let sql = "SELECT s.setl_id, s.mdtrt_id, s.psn_no, s.insuplc_admdvs, s.medfee_sumamt_fen, \
               s.fund_pay_sumamt_fen, s.acct_pay_fen, s.setlinfo, '' AS cmsgid, \
               CAST(0 AS BIGINT) AS cms FROM settlements s \
               WHERE s.fixmedins_code = $1 AND s.setl_date >= $2 AND s.setl_date <= $3 \
               UNION ALL \
               SELECT s.setl_id, s.mdtrt_id, s.psn_no, s.insuplc_admdvs, s.medfee_sumamt_fen, \
               s.fund_pay_sumamt_fen, s.acct_pay_fen, s.setlinfo, c.msgid, \
               COALESCE(m.created_at_ms, CAST(0 AS BIGINT)) FROM settlement_cancels c \
               JOIN settlements s ON s.setl_id = c.setl_id \
               LEFT JOIN nhsa_messages m ON m.msgid = c.msgid \
               WHERE s.fixmedins_code = $1 AND c.setl_date >= $2 AND c.setl_date <= $3";
    type Raw = (
        String,
        String,
        String,
        i64,
        i64,
        i64,
        i64,
        String,
        String,
        i64,
    );
    let rows: Vec<Raw> = dispatch!(ledger.store(), pool => {
        let rows = sqlx::query(sql).bind(fixmedins).bind(&first).bind(&last).fetch_all(pool)
            .await.map_err(storage)?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?,
            r.try_get(4)?, r.try_get(5)?, r.try_get(6)?, r.try_get(7)?, r.try_get(8)?,
            r.try_get(9)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>().map_err(storage)?
    });
    rows.into_iter()
        .map(
            |(setl_id, mdtrt_id, psn_no, insuplc, medfee, fund, acct, info, cmsgid, cms)| {
                let setl_time = serde_json::from_str::<serde_json::Value>(&info)
                    .ok()
                    .and_then(|v| v["setlinfo"]["setl_time"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                Ok(MonthRow {
                    setl_id,
                    mdtrt_id,
                    psn_no,
                    insuplc_admdvs: u32::try_from(insuplc).map_err(storage)?,
                    medfee_fen: medfee,
                    fund_fen: fund,
                    acct_fen: acct,
                    setl_time,
                    cancel_msgid: (!cmsgid.is_empty()).then_some(cmsgid),
                    cancel_ms: cms,
                })
            },
        )
        .collect()
}

/// Lines of `fixmedins`'s `month` confirmed (3261) since the month's last rollback (3262).
pub(crate) async fn confirmed_lines(
    ledger: &Ledger,
    fixmedins: &str,
    month: &str,
) -> Result<i64, RegionError> {
    let sql = "SELECT COUNT(*) FROM region_confirms c WHERE c.fixmedins_code = $1 \
               AND c.trt_month = $2 AND c.cnfm_flag <> 'X' AND c.created_at_ms >= \
               COALESCE((SELECT MAX(x.created_at_ms) FROM region_confirms x \
               WHERE x.fixmedins_code = $1 AND x.trt_month = $2 AND x.cnfm_flag = 'X'), 0)";
    Ok(dispatch!(ledger.store(), pool => {
        sqlx::query(sql).bind(fixmedins).bind(month).fetch_one(pool).await.map_err(storage)?
            .try_get::<i64, _>(0).map_err(storage)?
    }))
}
