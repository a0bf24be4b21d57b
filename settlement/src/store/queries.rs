//! Reads and account creation, written once for both databases (`dispatch!`).
//!
//! Static SQL uses `$N` placeholders, which both PostgreSQL and SQLite accept.

use sqlx::Row;

use crate::account::{Account, AccountFlags, AccountKind, AccountSpec, Balance};
use crate::error::{LedgerError, Rejection, Result};
use crate::ids::{AccountCode, AccountId, Admdvs, PostingId};
use crate::posting::{Leg, Link, Side};
use crate::records::{AccountEntry, PostingRecord};
use crate::store::batch::{admdvs_column, admdvs_of, fen_of, leg_of, posting_id};
use crate::store::{Store, dispatch};

/// One posting of the journal with its legs, for replay.
#[derive(Debug, Clone)]
pub(crate) struct JournalRow {
    pub seq: i64,
    pub admdvs: Admdvs,
    pub posted: bool,
    pub legs: Vec<Leg>,
}

fn account_of<R: Row>(row: &R) -> Result<Account>
where
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i16: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let kind: i16 = row.try_get(2)?;
    let code: String = row.try_get(3)?;
    Ok(Account {
        id: AccountId(row.try_get(0)?),
        spec: AccountSpec {
            admdvs: admdvs_of(row.try_get(1)?)?,
            kind: AccountKind::from_code(kind).ok_or(LedgerError::Corrupt("accounts.kind"))?,
            code: AccountCode::parse(&code).map_err(|_| LedgerError::Corrupt("accounts.code"))?,
            flags: AccountFlags::from_bits(row.try_get(4)?),
        },
        balance: Balance {
            debits_posted: fen_of(row.try_get(5)?, "accounts.debits_posted")?,
            credits_posted: fen_of(row.try_get(6)?, "accounts.credits_posted")?,
        },
    })
}

impl Store {
    /// Creates the account, or returns the existing one with the same (admdvs, kind, code) if its
    /// flags are the same. Errors: `AccountConflict` if they differ.
    pub(crate) async fn create_account(&self, spec: &AccountSpec) -> Result<Account> {
        let admdvs = admdvs_column(spec.admdvs)?;
        let kind = spec.kind.code();
        let code = spec.code.as_str();
        let flags = spec.flags.bits();
        let account = dispatch!(self, pool => {
            sqlx::query(
                "INSERT INTO accounts (admdvs, kind, code, flags) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (admdvs, kind, code) DO NOTHING",
            )
            .bind(admdvs)
            .bind(kind)
            .bind(code)
            .bind(flags)
            .execute(pool)
            .await?;
            let row = sqlx::query(
                "SELECT id, admdvs, kind, code, flags, debits_posted, credits_posted \
                 FROM accounts WHERE admdvs = $1 AND kind = $2 AND code = $3",
            )
            .bind(admdvs)
            .bind(kind)
            .bind(code)
            .fetch_one(pool)
            .await?;
            account_of(&row)?
        });
        if account.spec.flags == spec.flags {
            Ok(account)
        } else {
            Err(LedgerError::AccountConflict)
        }
    }

    /// One account. Errors: `UnknownAccount`.
    pub(crate) async fn account(&self, id: AccountId) -> Result<Account> {
        let sql = "SELECT id, admdvs, kind, code, flags, debits_posted, credits_posted \
                   FROM accounts WHERE id = $1";
        let row = dispatch!(self, pool => {
            match sqlx::query(sql).bind(id.get()).fetch_optional(pool).await? {
                Some(row) => Some(account_of(&row)?),
                None => None,
            }
        });
        row.ok_or(LedgerError::UnknownAccount(id))
    }

    /// Every account, in id order.
    pub(crate) async fn accounts(&self) -> Result<Vec<Account>> {
        let sql = "SELECT id, admdvs, kind, code, flags, debits_posted, credits_posted \
                   FROM accounts ORDER BY id";
        Ok(dispatch!(self, pool => {
            sqlx::query(sql)
                .fetch_all(pool)
                .await?
                .iter()
                .map(account_of)
                .collect::<Result<Vec<_>>>()?
        }))
    }

    /// Legs on `account` with `seq > after_seq`, oldest first, at most `limit`.
    pub(crate) async fn account_entries(
        &self,
        account: AccountId,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AccountEntry>> {
        let sql = "SELECT l.posting_seq, p.id, l.side, l.amount_fen, p.posted_at_ms \
                   FROM legs l JOIN postings p ON p.seq = l.posting_seq \
                   WHERE l.account_id = $1 AND l.posting_seq > $2 \
                   ORDER BY l.posting_seq LIMIT $3";
        Ok(dispatch!(self, pool => {
            sqlx::query(sql)
                .bind(account.get())
                .bind(after_seq)
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| -> Result<AccountEntry> {
                    let side: String = row.try_get(2)?;
                    Ok(AccountEntry {
                        seq: row.try_get(0)?,
                        posting: posting_id(row.try_get(1)?)?,
                        side: Side::parse(&side).ok_or(LedgerError::Corrupt("legs.side"))?,
                        amount: fen_of(row.try_get(3)?, "legs.amount_fen")?,
                        posted_at_ms: row.try_get(4)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?
        }))
    }

    /// A stored posting by client id, with its legs.
    pub(crate) async fn posting(&self, id: PostingId) -> Result<Option<PostingRecord>> {
        let head_sql = "SELECT seq, admdvs, status, reject_code, reject_account, link_kind, \
                        link_target, posted_at_ms FROM postings WHERE id = $1";
        let legs_sql = "SELECT account_id, side, amount_fen FROM legs \
                        WHERE posting_seq = $1 ORDER BY leg_no";
        let bytes = id.to_bytes().to_vec();
        Ok(dispatch!(self, pool => {
            let Some(row) = sqlx::query(head_sql).bind(bytes).fetch_optional(pool).await? else {
                return Ok(None);
            };
            let seq: i64 = row.try_get(0)?;
            let status: String = row.try_get(2)?;
            let link_kind: Option<String> = row.try_get(5)?;
            let link_target: Option<Vec<u8>> = row.try_get(6)?;
            let link_target = link_target.map(posting_id).transpose()?;
            let link = match (link_kind.as_deref(), link_target) {
                (Some("R"), Some(target)) => Some(Link::Reverses(target)),
                (Some("K"), Some(target)) => Some(Link::Corrects(target)),
                (None, None) => None,
                _ => return Err(LedgerError::Corrupt("postings.link_kind")),
            };
            let outcome = match status.as_str() {
                "P" => Ok(()),
                "R" => Err(Rejection::from_stored(row.try_get(3)?, row.try_get(4)?, link_target)
                    .ok_or(LedgerError::Corrupt("postings.reject_code"))?),
                _ => return Err(LedgerError::Corrupt("postings.status")),
            };
            let legs = sqlx::query(legs_sql)
                .bind(seq)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|leg| leg_of(leg.try_get(0)?, &leg.try_get::<String, _>(1)?, leg.try_get(2)?))
                .collect::<Result<Vec<_>>>()?;
            Some(PostingRecord {
                id,
                seq,
                admdvs: admdvs_of(row.try_get(1)?)?,
                outcome,
                legs,
                link,
                posted_at_ms: row.try_get(7)?,
            })
        }))
    }

    /// Up to `limit` postings with `seq > after_seq`, in seq order, with their legs.
    pub(crate) async fn journal_page(&self, after_seq: i64, limit: i64) -> Result<Vec<JournalRow>> {
        let heads_sql = "SELECT seq, admdvs, status FROM postings WHERE seq > $1 \
                         ORDER BY seq LIMIT $2";
        let legs_sql = "SELECT posting_seq, account_id, side, amount_fen FROM legs \
                        WHERE posting_seq > $1 AND posting_seq <= $2 \
                        ORDER BY posting_seq, leg_no";
        let (mut rows, legs) = dispatch!(self, pool => {
            let rows = sqlx::query(heads_sql)
                .bind(after_seq)
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| -> Result<JournalRow> {
                    let status: String = row.try_get(2)?;
                    Ok(JournalRow {
                        seq: row.try_get(0)?,
                        admdvs: admdvs_of(row.try_get(1)?)?,
                        posted: status == "P",
                        legs: Vec::new(),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let last = rows.last().map_or(after_seq, |row| row.seq);
            let legs = sqlx::query(legs_sql)
                .bind(after_seq)
                .bind(last)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|row| -> Result<(i64, Leg)> {
                    let side: String = row.try_get(2)?;
                    Ok((row.try_get(0)?, leg_of(row.try_get(1)?, &side, row.try_get(3)?)?))
                })
                .collect::<Result<Vec<_>>>()?;
            (rows, legs)
        });
        let mut index = 0;
        for (seq, leg) in legs {
            while rows.get(index).is_some_and(|row| row.seq < seq) {
                index += 1;
            }
            match rows.get_mut(index) {
                Some(row) if row.seq == seq => row.legs.push(leg),
                _ => return Err(LedgerError::Corrupt("legs.posting_seq")),
            }
        }
        Ok(rows)
    }
}
