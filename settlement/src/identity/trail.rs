//! The card-use trail (用卡轨迹): one `card_trail` row per use of a card.
//!
//! Where rows come from: sign-ins (written in the sign-in's transaction), partner verifications
//! ([`Identity::record_use`], for the partner platform), reads at terminals (`POST
//! /identity/v1/trail/reads`, [`Identity::record_read`]),
//! and medical settlements and card payments, copied from their own tables by
//! [`Identity::collect_trail`] (idempotent: `UNIQUE (kind, ref)`), so the hot settlement path is
//! untouched. A payment row has no holder (the switch keeps only a salted PAN hash, which no
//! holder record links to) and counts in the aggregates only.
//!
//! Who sees what: the holder lists their own rows with their token; operators get counts per
//! day, region, category and kind ([`Identity::trail_aggregates`]), and one person's rows only
//! through [`Identity::operator_trail`], which needs a reason and writes it to the holder's
//! read log.

use serde::Serialize;

use super::error::{IdentityError, Result};
use super::{Identity, now_ms, ordered_id};
use crate::directory::Category;
use crate::store::{Tx, dispatch};

/// The category of sign-ins and terminal reads whose service is not named.
pub const CATEGORY_PUBLIC_SERVICE: &str = "公共服务";
/// Most rows one trail page returns.
pub const TRAIL_PAGE_MAX: u32 = 200;
/// Most rows one [`Identity::collect_trail`] call copies per source.
pub const COLLECT_BATCH_MAX: i64 = 5_000;
/// Longest day range of one aggregate query, days.
pub const AGGREGATE_DAYS_MAX: usize = 366;

/// Kinds of card use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrailKind {
    /// The card read at an agent (identity, holder).
    Read,
    /// A medical settlement (2207/2304).
    Settlement,
    /// A card payment through the switch.
    Payment,
    /// A partner verified the card's status or identity.
    PartnerVerification,
    /// A card sign-in.
    Signin,
}

impl TrailKind {
    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            TrailKind::Read => "read",
            TrailKind::Settlement => "settlement",
            TrailKind::Payment => "payment",
            TrailKind::PartnerVerification => "partner_verification",
            TrailKind::Signin => "signin",
        }
    }

    /// Parses [`TrailKind::code`].
    pub fn parse(code: &str) -> Option<TrailKind> {
        [
            TrailKind::Read,
            TrailKind::Settlement,
            TrailKind::Payment,
            TrailKind::PartnerVerification,
            TrailKind::Signin,
        ]
        .into_iter()
        .find(|kind| kind.code() == code)
    }
}

/// One use of a card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrailEvent {
    /// Time-ordered id.
    pub event_id: String,
    /// What kind of use.
    pub kind: TrailKind,
    /// The row that caused it (setl_id, txn_id, session id, partner request id).
    #[serde(rename = "ref")]
    pub reference: String,
    /// The holder pseudonym ('' when unknown).
    pub holder_id: String,
    /// Where (6-digit division code).
    pub admdvs: i64,
    /// The directory category code.
    pub category: String,
    /// Who served it (institution, terminal, partner).
    pub actor: String,
    /// Business day (Asia/Shanghai), yyyy-MM-dd.
    pub day: String,
    /// Unix ms.
    pub at_ms: i64,
}

/// One aggregate cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrailCount {
    /// Business day.
    pub day: String,
    /// Region.
    pub admdvs: i64,
    /// Directory category.
    pub category: String,
    /// Kind of use.
    pub kind: String,
    /// Uses.
    pub uses: i64,
}

const TRAIL_COLUMNS: &str = "event_id, kind, ref, holder_id, admdvs, category, actor, day, at_ms";
type TrailRow = (
    String,
    String,
    String,
    String,
    i64,
    String,
    String,
    String,
    i64,
);

fn event_of(row: TrailRow) -> Result<TrailEvent> {
    Ok(TrailEvent {
        event_id: row.0,
        kind: TrailKind::parse(&row.1).ok_or(IdentityError::Corrupt("card_trail"))?,
        reference: row.2,
        holder_id: row.3,
        admdvs: row.4,
        category: row.5,
        actor: row.6,
        day: row.7,
        at_ms: row.8,
    })
}

/// Inserts `event` inside an open transaction (idempotent on (kind, ref)).
pub(crate) async fn insert_in(
    tx: &mut Tx,
    event: &TrailEvent,
) -> std::result::Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO card_trail ({TRAIL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (kind, ref) DO NOTHING"
    );
    dispatch!(tx, conn => {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&event.event_id)
            .bind(event.kind.code())
            .bind(&event.reference)
            .bind(&event.holder_id)
            .bind(event.admdvs)
            .bind(&event.category)
            .bind(&event.actor)
            .bind(&event.day)
            .bind(event.at_ms)
            .execute(&mut **conn)
            .await?;
    });
    Ok(())
}

/// `yyyyMMdd` → `yyyy-MM-dd` (payments' business_date).
fn dashed(day: &str) -> String {
    match (day.get(0..4), day.get(4..6), day.get(6..8)) {
        (Some(y), Some(m), Some(d)) => format!("{y}-{m}-{d}"),
        _ => day.to_owned(),
    }
}

impl Identity {
    /// Records one use reported by another module (partner verification, a read at an agent).
    /// `reference` makes it idempotent per kind. Errors: `BadField`, database.
    pub async fn record_use(
        &self,
        kind: TrailKind,
        reference: &str,
        holder_id: &str,
        admdvs: i64,
        category: Category,
        actor: &str,
    ) -> Result<TrailEvent> {
        if reference.is_empty() || reference.len() > 64 {
            return Err(IdentityError::BadField {
                field: "ref",
                reason: "must be 1..=64 bytes",
            });
        }
        let now = now_ms();
        let event = TrailEvent {
            event_id: ordered_id(now)?,
            kind,
            reference: reference.to_owned(),
            holder_id: holder_id.to_owned(),
            admdvs,
            category: category.code().to_owned(),
            actor: actor.to_owned(),
            day: super::business_day(now),
            at_ms: now,
        };
        let _turn = self.gate.enter().await;
        let mut tx = self.store.begin_write().await?;
        match insert_in(&mut tx, &event).await {
            Ok(()) => tx.commit().await?,
            Err(error) => {
                tx.rollback().await?;
                return Err(error.into());
            }
        }
        Ok(event)
    }

    /// Records a read of the card with number `card_no` at a terminal (an agent reading EF05/EF06
    /// for a service), as a `read` event of its holder at this node's region; `reference` is
    /// the terminal's id for the read (idempotent per reference). Errors: `BadField`,
    /// `HolderUnknown`, database.
    pub async fn record_read(
        &self,
        card_no: &str,
        reference: &str,
        terminal: &str,
        category: Category,
    ) -> Result<TrailEvent> {
        super::session::check_card_no(card_no)?;
        let person = self.person_by_card_no(card_no).await?;
        let holder_id = self.keys.holder_id(&person.psn_no);
        let admdvs = self.options.node_admdvs.parse().unwrap_or(0);
        let reference = format!("{terminal}:{reference}");
        self.record_use(
            TrailKind::Read,
            &reference,
            &holder_id,
            admdvs,
            category,
            terminal,
        )
        .await
    }

    /// Copies settlements (2207/2304, with their 就医地 and message time) and approved card
    /// purchases not yet in the trail, at most [`COLLECT_BATCH_MAX`] of each. Returns the rows
    /// added. Errors: database.
    pub async fn collect_trail(&self) -> Result<u64> {
        let settlements: Vec<(String, String, i64, String, String, i64)> = dispatch!(&self.store, pool => {
            sqlx::query_as(
                "SELECT s.setl_id, s.psn_no, v.mdtrtarea_admvs, s.fixmedins_code, s.setl_date, \
                 m.created_at_ms FROM settlements s \
                 JOIN visits v ON v.mdtrt_id = s.mdtrt_id \
                 JOIN nhsa_messages m ON m.msgid = s.msgid \
                 WHERE NOT EXISTS (SELECT 1 FROM card_trail t \
                   WHERE t.kind = 'settlement' AND t.ref = s.setl_id) \
                 LIMIT $1",
            )
            .bind(COLLECT_BATCH_MAX)
            .fetch_all(pool)
            .await?
        });
        let payments: Vec<(String, String, String, i64)> = dispatch!(&self.store, pool => {
            sqlx::query_as(
                "SELECT p.txn_id, p.merchant_id, p.business_date, p.created_at_ms FROM pay_txns p \
                 WHERE p.kind = 'purchase' AND p.status = 'approved' AND NOT EXISTS \
                 (SELECT 1 FROM card_trail t WHERE t.kind = 'payment' AND t.ref = p.txn_id) \
                 LIMIT $1",
            )
            .bind(COLLECT_BATCH_MAX)
            .fetch_all(pool)
            .await?
        });
        if settlements.is_empty() && payments.is_empty() {
            return Ok(0);
        }
        let node_admdvs: i64 = self.options.node_admdvs.parse().unwrap_or(0);
        let mut events = Vec::with_capacity(settlements.len() + payments.len());
        for (setl_id, psn_no, admdvs, fixmedins_code, setl_date, at_ms) in settlements {
            events.push(TrailEvent {
                event_id: ordered_id(at_ms)?,
                kind: TrailKind::Settlement,
                reference: setl_id,
                holder_id: self.keys.holder_id(&psn_no),
                admdvs,
                category: Category::Medical.code().to_owned(),
                actor: fixmedins_code,
                day: setl_date,
                at_ms,
            });
        }
        for (txn_id, merchant_id, business_date, at_ms) in payments {
            events.push(TrailEvent {
                event_id: ordered_id(at_ms)?,
                kind: TrailKind::Payment,
                reference: txn_id,
                holder_id: String::new(),
                admdvs: node_admdvs,
                category: Category::Finance.code().to_owned(),
                actor: merchant_id,
                day: dashed(&business_date),
                at_ms,
            });
        }
        let _turn = self.gate.enter().await;
        let mut tx = self.store.begin_write().await?;
        for event in &events {
            if let Err(error) = insert_in(&mut tx, event).await {
                tx.rollback().await?;
                return Err(error.into());
            }
        }
        tx.commit().await?;
        Ok(u64::try_from(events.len()).unwrap_or(u64::MAX))
    }

    /// The holder's own trail, newest first, older than `before_ms` when given, at most `limit`
    /// (clamped to 1..=[`TRAIL_PAGE_MAX`]). Errors: `Corrupt`, database.
    pub async fn holder_trail(
        &self,
        holder_id: &str,
        before_ms: Option<i64>,
        limit: u32,
    ) -> Result<Vec<TrailEvent>> {
        let sql = format!(
            "SELECT {TRAIL_COLUMNS} FROM card_trail WHERE holder_id = $1 AND at_ms < $2 \
             ORDER BY at_ms DESC, event_id DESC LIMIT $3"
        );
        let rows: Vec<TrailRow> = dispatch!(&self.store, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(holder_id)
                .bind(before_ms.unwrap_or(i64::MAX))
                .bind(i64::from(limit.clamp(1, TRAIL_PAGE_MAX)))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(event_of).collect()
    }

    /// Uses per business day, region, category and kind for days `from..=to` (yyyy-MM-dd, at
    /// most [`AGGREGATE_DAYS_MAX`] days apart by text order). No holder appears.
    /// Errors: `BadField` (dates), database.
    pub async fn trail_aggregates(&self, from: &str, to: &str) -> Result<Vec<TrailCount>> {
        for (field, day) in [("from", from), ("to", to)] {
            if !is_day(day) {
                return Err(IdentityError::BadField {
                    field,
                    reason: "must be a date yyyy-MM-dd",
                });
            }
        }
        let rows: Vec<(String, i64, String, String, i64)> = dispatch!(&self.store, pool => {
            sqlx::query_as(
                "SELECT day, admdvs, category, kind, COUNT(*) FROM card_trail \
                 WHERE day >= $1 AND day <= $2 GROUP BY day, admdvs, category, kind \
                 ORDER BY day, admdvs, category, kind LIMIT 100000",
            )
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(day, admdvs, category, kind, uses)| TrailCount {
                day,
                admdvs,
                category,
                kind,
                uses,
            })
            .collect())
    }

    /// One holder's trail for an operator: needs a reason (1..=400 characters), which is
    /// written with the operator's account to the holder's read log before the rows are read.
    /// Errors: `ReasonRequired`, `NotFound`, database.
    pub async fn operator_trail(
        &self,
        holder_id: &str,
        operator: &str,
        reason: &str,
        limit: u32,
    ) -> Result<Vec<TrailEvent>> {
        self.audit_read(holder_id, "operator", operator, "trail", reason)
            .await?;
        self.holder_trail(holder_id, None, limit).await
    }
}

/// `yyyy-MM-dd` with digits where digits belong.
pub(crate) fn is_day(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_and_kinds_parse_strictly() {
        assert!(is_day("2026-11-30"));
        assert!(!is_day("2026-1-30") && !is_day("2026/11/30") && !is_day("x"));
        assert_eq!(dashed("20261130"), "2026-11-30");
        for kind in [
            "read",
            "settlement",
            "payment",
            "partner_verification",
            "signin",
        ] {
            assert_eq!(TrailKind::parse(kind).map(TrailKind::code), Some(kind));
        }
        assert_eq!(TrailKind::parse("other"), None);
    }
}
