//! Rows of the medical tables as plain data, and the one function that inserts them.
//!
//! Why data and not SQL callbacks: a settlement's rows (its message record, the settlement, the
//! accumulator deltas) must commit in the SAME transaction as its ledger posting, and the ledger's
//! group-commit writer puts hundreds of postings in one transaction. The writer therefore takes the
//! rows with the posting (`Ledger::post_attached`) and inserts every batch's rows grouped by table
//! in multi-row statements, so a batch of N settlements costs a handful of statements, not N.
//! Every medical table is append-only (state is derived from later rows, never updated), so
//! inserting is all the writer ever does with them.

use std::collections::BTreeMap;

use sqlx::QueryBuilder;

use crate::error::Result;
use crate::store::{Tx, dispatch};

/// Most bind parameters in one statement (SQLite's limit is 32 766; PostgreSQL's 65 535).
const BINDS_PER_STATEMENT_MAX: usize = 30_000;

/// The append-only medical tables (migrations/*/0003_medical.sql).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Table {
    /// `nhsa_messages`: one row per answered `msgid` (the idempotency record).
    Messages,
    /// `visits`: one row per registration / admission (2201, 2401).
    Visits,
    /// `visit_events`: cancellations, visit information, discharge (2202, 2203, 2402).
    VisitEvents,
    /// `fee_lines`: classified fee lines (2204, 2301).
    FeeLines,
    /// `fee_cancels`: cancelled fee lines (2205, 2302).
    FeeCancels,
    /// `settlements`: committed settlements (2207, 2304).
    Settlements,
    /// `settlement_cancels`: cancellations and reversals of settlements (2208, 2305, 2601).
    SettlementCancels,
    /// `accumulator_changes`: signed year-to-date accumulator changes, one row per settlement
    /// and per cancellation (0005_accumulator_changes.sql).
    AccumulatorChanges,
    /// `persons`: imported insured persons.
    Persons,
    /// `region_xfers`: cross-region settlement states on the treating node (0300_region.sql).
    RegionXfers,
    /// `region_inbox`: decisions and reversals on the insured node (0300_region.sql).
    RegionInbox,
    /// `region_events`: clearing events per fund and window (0300_region.sql).
    RegionEvents,
    /// `region_outbox`: outgoing inter-node messages (0300_region.sql).
    RegionOutbox,
    /// `region_windows`: closed clearing windows (0300_region.sql).
    RegionWindows,
    /// `region_clearings`: clearing settlements of windows (0301_region_clearing.sql).
    RegionClearings,
    /// `region_confirms`: hospitals' monthly clearing confirmations (0301_region_clearing.sql).
    RegionConfirms,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Messages => "nhsa_messages",
            Table::Visits => "visits",
            Table::VisitEvents => "visit_events",
            Table::FeeLines => "fee_lines",
            Table::FeeCancels => "fee_cancels",
            Table::Settlements => "settlements",
            Table::SettlementCancels => "settlement_cancels",
            Table::AccumulatorChanges => "accumulator_changes",
            Table::Persons => "persons",
            Table::RegionXfers => "region_xfers",
            Table::RegionInbox => "region_inbox",
            Table::RegionEvents => "region_events",
            Table::RegionOutbox => "region_outbox",
            Table::RegionWindows => "region_windows",
            Table::RegionClearings => "region_clearings",
            Table::RegionConfirms => "region_confirms",
        }
    }

    /// Column list, in the order `Row::values` gives them.
    pub(crate) fn columns(self) -> &'static [&'static str] {
        match self {
            Table::Messages => &[
                "msgid",
                "infno",
                "request_sha256",
                "status",
                "posting_id",
                "psn_no",
                "reply",
                "created_at_ms",
            ],
            Table::Visits => &[
                "mdtrt_id",
                "psn_no",
                "insutype",
                "insuplc_admdvs",
                "mdtrtarea_admvs",
                "fixmedins_code",
                "setting",
                "med_type",
                "begntime",
                "msgid",
                "created_at_ms",
            ],
            Table::VisitEvents => &["mdtrt_id", "kind", "msgid", "detail", "created_at_ms"],
            Table::FeeLines => &[
                "mdtrt_id",
                "feedetl_sn",
                "chrg_bchno",
                "msgid",
                "med_list_codg",
                "line",
                "det_item_fee_sumamt_fen",
                "fulamt_ownpay_amt_fen",
                "overlmt_amt_fen",
                "preselfpay_amt_fen",
                "inscp_scp_amt_fen",
            ],
            Table::FeeCancels => &["mdtrt_id", "feedetl_sn", "msgid"],
            Table::Settlements => &[
                "setl_id",
                "msgid",
                "posting_id",
                "mdtrt_id",
                "psn_no",
                "insutype",
                "insuplc_admdvs",
                "fixmedins_code",
                "setl_date",
                "medfee_sumamt_fen",
                "fund_pay_sumamt_fen",
                "acct_pay_fen",
                "psn_cash_pay_fen",
                "setlinfo",
            ],
            Table::SettlementCancels => &["setl_id", "msgid", "posting_id", "kind", "setl_date"],
            Table::AccumulatorChanges => &["psn_no", "year", "setl_id", "sign", "deltas"],
            Table::Persons => &[
                "psn_no",
                "certno_sha256",
                "card_no_sha256",
                "insuplc_admdvs",
                "record",
            ],
            Table::RegionXfers => &[
                "xfer_id",
                "state",
                "counter_admdvs",
                "window_id",
                "detail",
                "created_at_ms",
            ],
            Table::RegionInbox => &[
                "xfer_id",
                "kind",
                "origin_admdvs",
                "request_sha256",
                "reply",
                "created_at_ms",
            ],
            Table::RegionEvents => &[
                "xfer_id",
                "kind",
                "origin_admdvs",
                "window_id",
                "counter_admdvs",
                "fund_pay_type",
                "amount_fen",
                "created_at_ms",
            ],
            Table::RegionOutbox => &[
                "msg_id",
                "to_admdvs",
                "path",
                "body",
                "window_id",
                "created_at_ms",
            ],
            Table::RegionWindows => &["window_id", "closed_at_ms"],
            Table::RegionClearings => &[
                "origin_admdvs",
                "window_id",
                "counter_admdvs",
                "role",
                "amounts",
                "created_at_ms",
            ],
            Table::RegionConfirms => &[
                "fixmedins_code",
                "trt_month",
                "setl_sn",
                "cnfm_flag",
                "msgid",
                "created_at_ms",
            ],
        }
    }
}

/// One bound value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// A 64-bit integer (fen, milliseconds, admdvs, year).
    I64(i64),
    /// Text.
    Text(String),
    /// Bytes (hashes, posting ids).
    Bytes(Vec<u8>),
    /// SQL NULL in an integer or bytes column.
    NullBytes,
}

/// One row to insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    /// Target table.
    pub table: Table,
    /// One value per column of `table.columns()`, in order.
    pub values: Vec<Value>,
}

/// Rows that ride with a ledger posting: `always` is inserted when the posting is decided for the
/// first time (posted or rejected: the message record), `if_posted` only when it is posted (the
/// settlement, the accumulator deltas).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Attachment {
    /// Written with a first-time decision either way.
    pub always: Vec<Row>,
    /// Written only if the posting is posted.
    pub if_posted: Vec<Row>,
}

impl Row {
    /// The msgid of an `nhsa_messages` row (its first column), `None` for other tables.
    pub(crate) fn message_id(&self) -> Option<&str> {
        match (self.table, self.values.first()) {
            (Table::Messages, Some(Value::Text(msgid))) => Some(msgid.as_str()),
            _ => None,
        }
    }
}

/// Which of `msgids` already have an `nhsa_messages` row, read inside `tx` (the serialised
/// write): one statement of fixed text whatever the count (a keyed lookup driven by `UNNEST($1)`
/// on PostgreSQL, see store/mod.rs; `json_each` on SQLite), so the prepared statement is reused
/// by every batch.
pub(crate) async fn recorded_messages(
    tx: &mut Tx,
    msgids: &[&str],
) -> Result<std::collections::HashSet<String>> {
    use sqlx::Row as _;
    if msgids.is_empty() {
        return Ok(std::collections::HashSet::new());
    }
    let found: Vec<String> = match tx {
        crate::store::Backend::Postgres(t) => {
            let list: Vec<String> = msgids.iter().map(|m| (*m).to_owned()).collect();
            sqlx::query(
                "SELECT m.msgid FROM UNNEST($1::text[]) AS k (msgid) CROSS JOIN LATERAL \
                 (SELECT msgid FROM nhsa_messages WHERE nhsa_messages.msgid = k.msgid OFFSET 0) AS m",
            )
                .bind(list)
                .fetch_all(&mut **t)
                .await?
                .iter()
                .map(|row| row.try_get::<String, _>(0))
                .collect::<Result<_, _>>()?
        }
        crate::store::Backend::Sqlite(t) => {
            let list = serde_json::to_string(msgids)
                .map_err(|_| crate::error::LedgerError::Corrupt("msgid list"))?;
            sqlx::query(
                "SELECT msgid FROM nhsa_messages WHERE msgid IN (SELECT value FROM json_each($1))",
            )
            .bind(list)
            .fetch_all(&mut **t)
            .await?
            .iter()
            .map(|row| row.try_get::<String, _>(0))
            .collect::<Result<_, _>>()?
        }
    };
    Ok(found.into_iter().collect())
}

/// For each group of rows (one message's rows each), whether its message is already recorded
/// (in the database, or by an earlier group of the same batch): such a group must write nothing.
pub(crate) async fn taken_groups<'a>(
    tx: &mut Tx,
    groups: impl Iterator<Item = Option<&'a str>> + Clone,
) -> Result<Vec<bool>> {
    let msgids: Vec<&str> = groups.clone().flatten().collect();
    let recorded = recorded_messages(tx, &msgids).await?;
    let mut seen = std::collections::HashSet::new();
    Ok(groups
        .map(|msgid| msgid.is_some_and(|m| recorded.contains(m) || !seen.insert(m)))
        .collect())
}

/// Inserts `rows` grouped by table inside `tx`: on PostgreSQL every table's rows in ONE
/// statement (`insert_unnest`), on SQLite one multi-row `VALUES` statement per table (and per
/// `BINDS_PER_STATEMENT_MAX` binds).
pub(crate) async fn insert_rows(tx: &mut Tx, rows: &[&Row]) -> Result<()> {
    let mut by_table: BTreeMap<Table, Vec<&Row>> = BTreeMap::new();
    for row in rows {
        by_table.entry(row.table).or_default().push(row);
    }
    if let Tx::Postgres(t) = tx {
        return insert_unnest(&mut **t, &by_table).await;
    }
    for (table, rows) in by_table {
        let columns = table.columns();
        let per_statement = (BINDS_PER_STATEMENT_MAX / columns.len()).max(1);
        for chunk in rows.chunks(per_statement) {
            let head = format!("INSERT INTO {} ({}) ", table.name(), columns.join(", "));
            dispatch!(tx, t => {
                let mut query = QueryBuilder::new(head);
                query.push_values(chunk, |mut out, row| {
                    for value in &row.values {
                        match value {
                            Value::I64(v) => out.push_bind(*v),
                            Value::Text(v) => out.push_bind(v.clone()),
                            Value::Bytes(v) => out.push_bind(v.clone()),
                            Value::NullBytes => out.push_bind(None::<Vec<u8>>),
                        };
                    }
                });
                query.build().execute(&mut **t).await?;
            });
        }
    }
    Ok(())
}

/// One column of a table's rows, as the array bound for `UNNEST`.
enum Column {
    I64(Vec<Option<i64>>),
    Text(Vec<Option<String>>),
    Bytes(Vec<Option<Vec<u8>>>),
}

impl Column {
    /// Column `index` of `rows`; its kind is that of the first non-NULL value (a column's values
    /// are always of one kind), `bytea` when every value is NULL.
    fn of(rows: &[&Row], index: usize) -> Column {
        let kind = rows
            .iter()
            .filter_map(|row| row.values.get(index))
            .find(|value| !matches!(value, Value::NullBytes));
        match kind {
            Some(Value::I64(_)) => Column::I64(
                rows.iter()
                    .map(|row| match row.values.get(index) {
                        Some(Value::I64(v)) => Some(*v),
                        _ => None,
                    })
                    .collect(),
            ),
            Some(Value::Text(_)) => Column::Text(
                rows.iter()
                    .map(|row| match row.values.get(index) {
                        Some(Value::Text(v)) => Some(v.clone()),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => Column::Bytes(
                rows.iter()
                    .map(|row| match row.values.get(index) {
                        Some(Value::Bytes(v)) => Some(v.clone()),
                        _ => None,
                    })
                    .collect(),
            ),
        }
    }

    fn sql_type(&self) -> &'static str {
        match self {
            Column::I64(_) => "int8",
            Column::Text(_) => "text",
            Column::Bytes(_) => "bytea",
        }
    }
}

/// PostgreSQL: the rows of every table in ONE statement, each table an
/// `INSERT ... SELECT * FROM UNNEST($n::type[], ...)` (one array per column), all but the last
/// as data-modifying `WITH` parts. Its text depends only on which tables the batch touches (a
/// few combinations: a settlement batch's message, settlement and accumulator rows, a fee upload
/// batch's message and fee lines, ...; sqlx keeps 100 prepared statements per connection), not
/// on the batch size as a multi-row `VALUES` list would; and a batch's medical rows cost one
/// round trip whatever their tables. The parts run on one snapshot and foreign keys are checked
/// at the end of the statement, which is all these append-only inserts need (no part reads
/// another's rows).
async fn insert_unnest<'c>(
    executor: impl sqlx::PgExecutor<'c>,
    by_table: &BTreeMap<Table, Vec<&Row>>,
) -> Result<()> {
    let mut unnest = UnnestInserts::of(by_table, 1);
    let Some(last) = unnest.parts.pop() else {
        return Ok(());
    };
    let mut sql = String::new();
    for (index, part) in unnest.parts.iter().enumerate() {
        sql.push_str(if index == 0 { "WITH " } else { ", " });
        sql.push_str(&format!("w{index} AS ({part})"));
    }
    if !unnest.parts.is_empty() {
        sql.push(' ');
    }
    sql.push_str(&last);
    unnest
        .bind(sqlx::query(sqlx::AssertSqlSafe(sql)))
        .execute(executor)
        .await?;
    Ok(())
}

/// PostgreSQL: one `INSERT INTO table (...) SELECT * FROM UNNEST($n::type[], ...)` per table of
/// some rows (`parts`, in table order) and the arrays they bind, numbered from `first_bind`.
pub(crate) struct UnnestInserts {
    /// The INSERT statements, to be sent as data-modifying `WITH` parts or on their own.
    pub parts: Vec<String>,
    arrays: Vec<Column>,
}

impl UnnestInserts {
    /// The inserts of `rows` grouped by table, binds numbered from `first_bind`.
    pub(crate) fn of(by_table: &BTreeMap<Table, Vec<&Row>>, first_bind: usize) -> UnnestInserts {
        let mut parts: Vec<String> = Vec::with_capacity(by_table.len());
        let mut arrays: Vec<Column> = Vec::new();
        for (table, rows) in by_table {
            let columns = table.columns();
            let mut casts: Vec<String> = Vec::with_capacity(columns.len());
            for index in 0..columns.len() {
                let column = Column::of(rows, index);
                casts.push(format!(
                    "${}::{}[]",
                    first_bind + arrays.len(),
                    column.sql_type()
                ));
                arrays.push(column);
            }
            parts.push(format!(
                "INSERT INTO {} ({}) SELECT * FROM UNNEST({})",
                table.name(),
                columns.join(", "),
                casts.join(", ")
            ));
        }
        UnnestInserts { parts, arrays }
    }

    /// The arrays bound to `query`, in their numbering's order.
    pub(crate) fn bind<'q>(
        self,
        mut query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        for column in self.arrays {
            query = match column {
                Column::I64(values) => query.bind(values),
                Column::Text(values) => query.bind(values),
                Column::Bytes(values) => query.bind(values),
            };
        }
        query
    }
}

/// PostgreSQL only: `rows` in ONE statement sent outside any explicit transaction, so PostgreSQL
/// commits it on its own (one round trip where `BEGIN`, the statement and `COMMIT` take three):
/// every row is written, or none (a statement is atomic). Nothing checks first whether a
/// message is already recorded: its `nhsa_messages` primary key refuses the whole statement
/// then, and the caller decides again inside a transaction (`medical::store::run_rows`).
///
/// Errors: [`LedgerError::Storage`] for any refusal (unique violations included) or a lost
/// connection, when the statement may or may not have committed.
pub(crate) async fn insert_rows_autocommit(pool: &sqlx::PgPool, rows: &[&Row]) -> Result<()> {
    let mut by_table: BTreeMap<Table, Vec<&Row>> = BTreeMap::new();
    for row in rows {
        by_table.entry(row.table).or_default().push(row);
    }
    insert_unnest(pool, &by_table).await
}
