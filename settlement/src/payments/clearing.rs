//! The daily cut-off: per bank, the net settlement of one business date (approved purchases
//! minus approved refunds; voided purchases, declines and timed-out-then-reversed requests count
//! zero) and a clearing file listing every transaction with its final status; and the
//! reconciliation of a bank's own file against ours, listing every mismatch.
//!
//! Clearing file (UTF-8 text, one record per line, `|`-separated, no PAN in clear):
//! `H|<bank>|<YYYYMMDD>|<records>|<net fen>` then per transaction
//! `D|<rrn>|<stan>|<terminal>|<kind>|<amount fen>|<status>|<masked PAN>`.

use std::collections::BTreeMap;

use super::PaymentError;
use super::store::{self, TxnRow};
use super::switch::Switch;

/// Most records of one clearing file we read back.
pub const CLEARING_RECORDS_MAX: usize = 1_000_000;

/// One bank's day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankSettlement {
    /// Bank code.
    pub bank_code: String,
    /// Business date.
    pub business_date: String,
    /// Net position, fen: > 0 the bank owes the switch (card purchases), < 0 the switch owes
    /// the bank (refunds).
    pub net_fen: i64,
    /// The clearing file text.
    pub file: String,
}

/// One clearing record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearingRecord {
    /// RRN (the reconciliation key).
    pub rrn: String,
    /// STAN.
    pub stan: String,
    /// Terminal.
    pub terminal_id: String,
    /// purchase / refund / void.
    pub kind: String,
    /// Amount that counts, fen (approved amount when approved, else the requested one).
    pub amount_fen: i64,
    /// Final status.
    pub status: String,
    /// Masked PAN.
    pub pan_masked: String,
}

/// A difference between a bank's file and ours.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mismatch {
    /// In our file, not in the bank's.
    MissingAtBank {
        /// RRN.
        rrn: String,
    },
    /// In the bank's file, not in ours.
    MissingAtSwitch {
        /// RRN.
        rrn: String,
    },
    /// Amounts differ.
    AmountDiffers {
        /// RRN.
        rrn: String,
        /// Ours, fen.
        ours_fen: i64,
        /// The bank's, fen.
        theirs_fen: i64,
    },
    /// Statuses differ.
    StatusDiffers {
        /// RRN.
        rrn: String,
        /// Ours.
        ours: String,
        /// The bank's.
        theirs: String,
    },
}

/// Why a clearing file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClearingFileError {
    /// A line is not a well-formed H or D record (1-based line number).
    #[error("line {0} is not a clearing record")]
    Line(usize),
    /// The header's count or net does not match the records.
    #[error("header totals do not match the records")]
    Totals,
    /// More than [`CLEARING_RECORDS_MAX`] records.
    #[error("too many records")]
    TooLong,
}

/// A transaction's clearing line. Its amount is what the issuer approved whenever it approved
/// something (approved, voided, or reversed after approval: a partial approval's void and 0400
/// carry the approved amount, so the bank's file shows that), else what was asked (declined,
/// or reversed without an answer).
fn record_of(t: &TxnRow) -> ClearingRecord {
    ClearingRecord {
        rrn: t.rrn.clone(),
        stan: t.stan.clone(),
        terminal_id: t.terminal_id.clone(),
        kind: t.kind.clone(),
        amount_fen: if t.status == "approved" || t.status == "voided" || t.approved_fen > 0 {
            t.approved_fen
        } else {
            t.amount_fen
        },
        status: t.status.clone(),
        pan_masked: t.pan_masked.clone(),
    }
}

/// What a record adds to the bank's net, fen.
#[must_use]
pub fn net_effect(r: &ClearingRecord) -> i64 {
    match (r.kind.as_str(), r.status.as_str()) {
        ("purchase", "approved") => r.amount_fen,
        ("refund", "approved") => -r.amount_fen,
        _ => 0,
    }
}

/// Renders a clearing file.
#[must_use]
pub fn render(bank_code: &str, business_date: &str, records: &[ClearingRecord]) -> String {
    let net: i64 = records.iter().map(net_effect).sum();
    let mut out = format!("H|{bank_code}|{business_date}|{}|{net}\n", records.len());
    for r in records {
        out.push_str(&format!(
            "D|{}|{}|{}|{}|{}|{}|{}\n",
            r.rrn, r.stan, r.terminal_id, r.kind, r.amount_fen, r.status, r.pan_masked
        ));
    }
    out
}

/// Parses a clearing file and checks its header totals.
///
/// Errors: [`ClearingFileError`].
pub fn parse(text: &str) -> Result<Vec<ClearingRecord>, ClearingFileError> {
    let mut lines = text.lines().enumerate();
    let (_, header) = lines.next().ok_or(ClearingFileError::Line(1))?;
    let h: Vec<&str> = header.split('|').collect();
    let (count, net) = match h.as_slice() {
        ["H", _, _, count, net] => (
            count
                .parse::<usize>()
                .map_err(|_| ClearingFileError::Line(1))?,
            net.parse::<i64>().map_err(|_| ClearingFileError::Line(1))?,
        ),
        _ => return Err(ClearingFileError::Line(1)),
    };
    let mut records = Vec::new();
    for (i, line) in lines {
        if records.len() >= CLEARING_RECORDS_MAX {
            return Err(ClearingFileError::TooLong);
        }
        let f: Vec<&str> = line.split('|').collect();
        let ["D", rrn, stan, terminal, kind, amount, status, pan] = f.as_slice() else {
            return Err(ClearingFileError::Line(i + 1));
        };
        records.push(ClearingRecord {
            rrn: (*rrn).to_owned(),
            stan: (*stan).to_owned(),
            terminal_id: (*terminal).to_owned(),
            kind: (*kind).to_owned(),
            amount_fen: amount.parse().map_err(|_| ClearingFileError::Line(i + 1))?,
            status: (*status).to_owned(),
            pan_masked: (*pan).to_owned(),
        });
    }
    let sum: i64 = records.iter().map(net_effect).sum();
    if records.len() != count || sum != net {
        return Err(ClearingFileError::Totals);
    }
    Ok(records)
}

/// Every mismatch between our records and a bank's, by RRN, in RRN order.
#[must_use]
pub fn reconcile(ours: &[ClearingRecord], theirs: &[ClearingRecord]) -> Vec<Mismatch> {
    let ours: BTreeMap<&str, &ClearingRecord> = ours.iter().map(|r| (r.rrn.as_str(), r)).collect();
    let theirs: BTreeMap<&str, &ClearingRecord> =
        theirs.iter().map(|r| (r.rrn.as_str(), r)).collect();
    let mut out = Vec::new();
    let mut keys: Vec<&str> = ours.keys().chain(theirs.keys()).copied().collect();
    keys.sort_unstable();
    keys.dedup();
    for rrn in keys {
        match (ours.get(rrn), theirs.get(rrn)) {
            (Some(_), None) => out.push(Mismatch::MissingAtBank {
                rrn: rrn.to_owned(),
            }),
            (None, Some(_)) => out.push(Mismatch::MissingAtSwitch {
                rrn: rrn.to_owned(),
            }),
            (Some(a), Some(b)) => {
                if a.amount_fen != b.amount_fen {
                    out.push(Mismatch::AmountDiffers {
                        rrn: rrn.to_owned(),
                        ours_fen: a.amount_fen,
                        theirs_fen: b.amount_fen,
                    });
                }
                if a.status != b.status {
                    out.push(Mismatch::StatusDiffers {
                        rrn: rrn.to_owned(),
                        ours: a.status.clone(),
                        theirs: b.status.clone(),
                    });
                }
            }
            (None, None) => {}
        }
    }
    out
}

impl Switch {
    /// The cut-off of `business_date`: one [`BankSettlement`] per bank of the routing table
    /// (a bank without transactions gets a net of 0 and an empty file).
    ///
    /// Errors: [`PaymentError::Store`].
    pub async fn cut_off(&self, business_date: &str) -> Result<Vec<BankSettlement>, PaymentError> {
        let txns = store::txns_of_day(self.inner.ledger.store(), business_date).await?;
        Ok(self
            .inner
            .routing
            .banks
            .iter()
            .map(|bank| {
                let records: Vec<ClearingRecord> = txns
                    .iter()
                    .filter(|t| t.bank_code == bank.code)
                    .map(record_of)
                    .collect();
                BankSettlement {
                    bank_code: bank.code.clone(),
                    business_date: business_date.to_owned(),
                    net_fen: records.iter().map(net_effect).sum(),
                    file: render(&bank.code, business_date, &records),
                }
            })
            .collect())
    }
}
