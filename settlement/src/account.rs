//! Accounts: what they are (kind, region, code), their balance conditions (flags) and balances.
//!
//! Modelled on TigerBeetle's account (anchors-switch.md §1.1): balances are `debits_posted` and
//! `credits_posted` in fen that only the ledger changes, accounts are never deleted, and the flags
//! `debits_must_not_exceed_credits` / `credits_must_not_exceed_debits` are enforced inside the
//! serialised write.

use std::fmt;

use crate::fen::Fen;
use crate::ids::{AccountCode, AccountId, Admdvs, FundPayType};

/// The kind of an account. Stored as a small integer (`kind` column); the numbers are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum AccountKind {
    /// A fund of the region: the pooled fund 统筹基金 or another fund, code = its `fund_pay_type`.
    Fund,
    /// An insured person's personal account 个人账户, code = a pseudonymous person reference.
    /// Always carries `debits_must_not_exceed_credits` (it never goes below zero).
    Personal,
    /// A designated institution's receivable (定点医药机构应收), code = `fixmedins_code`.
    InstitutionReceivable,
    /// Cash paid by the patient at the counter (个人现金支付), code = the collection channel.
    PatientCash,
    /// Clearing toward another region or a bank, code = the counterparty's admdvs or bank code.
    Clearing,
}

impl AccountKind {
    /// The stored number.
    pub fn code(self) -> i16 {
        match self {
            AccountKind::Fund => 1,
            AccountKind::Personal => 2,
            AccountKind::InstitutionReceivable => 3,
            AccountKind::PatientCash => 4,
            AccountKind::Clearing => 5,
        }
    }

    /// From the stored number; `None` for a number this build does not know.
    pub fn from_code(code: i16) -> Option<AccountKind> {
        Some(match code {
            1 => AccountKind::Fund,
            2 => AccountKind::Personal,
            3 => AccountKind::InstitutionReceivable,
            4 => AccountKind::PatientCash,
            5 => AccountKind::Clearing,
            _ => return None,
        })
    }
}

/// Balance conditions of an account, TigerBeetle-style (anchors-switch.md §1.1). Stored as a bit
/// set in `flags` (bit 0, bit 1), which the database CHECK constraint also reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AccountFlags {
    /// `debits_posted <= credits_posted` at all times (the account never goes below zero).
    pub debits_must_not_exceed_credits: bool,
    /// `credits_posted <= debits_posted` at all times.
    pub credits_must_not_exceed_debits: bool,
}

impl AccountFlags {
    const DEBITS_MUST_NOT_EXCEED_CREDITS: i32 = 1;
    const CREDITS_MUST_NOT_EXCEED_DEBITS: i32 = 2;

    /// The stored bit set.
    pub fn bits(self) -> i32 {
        let mut bits = 0;
        if self.debits_must_not_exceed_credits {
            bits |= Self::DEBITS_MUST_NOT_EXCEED_CREDITS;
        }
        if self.credits_must_not_exceed_debits {
            bits |= Self::CREDITS_MUST_NOT_EXCEED_DEBITS;
        }
        bits
    }

    /// From the stored bit set (unknown bits are ignored).
    pub fn from_bits(bits: i32) -> AccountFlags {
        AccountFlags {
            debits_must_not_exceed_credits: bits & Self::DEBITS_MUST_NOT_EXCEED_CREDITS != 0,
            credits_must_not_exceed_debits: bits & Self::CREDITS_MUST_NOT_EXCEED_DEBITS != 0,
        }
    }
}

/// Why an account specification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccountSpecError {
    /// Both balance conditions at once would freeze the account at zero forever.
    #[error("an account cannot carry both balance conditions")]
    ConflictingFlags,
}

/// What identifies an account: `(admdvs, kind, code)` is unique in the ledger.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AccountSpec {
    /// The region (pooling-level division) whose ledger the account belongs to.
    pub admdvs: Admdvs,
    /// The kind.
    pub kind: AccountKind,
    /// The code within the kind (see `AccountCode`).
    pub code: AccountCode,
    /// Balance conditions.
    pub flags: AccountFlags,
}

impl AccountSpec {
    /// A region's fund account, e.g. the pooled fund `FundPayType::EMPLOYEE_POOLED` (310100).
    /// No balance condition: a fund may be advanced (pre-funded) and reconciled later.
    pub fn fund(admdvs: Admdvs, fund: FundPayType) -> AccountSpec {
        AccountSpec {
            admdvs,
            kind: AccountKind::Fund,
            code: AccountCode::from(fund),
            flags: AccountFlags::default(),
        }
    }

    /// An insured person's personal account 个人账户, which never goes below zero.
    pub fn personal(admdvs: Admdvs, person_ref: AccountCode) -> AccountSpec {
        AccountSpec {
            admdvs,
            kind: AccountKind::Personal,
            code: person_ref,
            flags: AccountFlags {
                debits_must_not_exceed_credits: true,
                credits_must_not_exceed_debits: false,
            },
        }
    }

    /// A spec of any kind with explicit flags (a `Personal` account always gets
    /// `debits_must_not_exceed_credits`). Errors: `ConflictingFlags`.
    pub fn new(
        admdvs: Admdvs,
        kind: AccountKind,
        code: AccountCode,
        mut flags: AccountFlags,
    ) -> Result<AccountSpec, AccountSpecError> {
        if kind == AccountKind::Personal {
            flags.debits_must_not_exceed_credits = true;
        }
        if flags.debits_must_not_exceed_credits && flags.credits_must_not_exceed_debits {
            return Err(AccountSpecError::ConflictingFlags);
        }
        Ok(AccountSpec {
            admdvs,
            kind,
            code,
            flags,
        })
    }
}

impl fmt::Debug for AccountSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountSpec")
            .field("admdvs", &self.admdvs.to_string())
            .field("kind", &self.kind)
            .field("code", &self.code)
            .field("flags", &self.flags)
            .finish()
    }
}

/// An account as stored: id, identity and balances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The ledger's id.
    pub id: AccountId,
    /// Region, kind, code, flags.
    pub spec: AccountSpec,
    /// The balances.
    pub balance: Balance,
}

/// Posted balances of one account, in fen. Both only ever grow; the net position is their
/// difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Balance {
    /// Sum of all posted debit legs on the account.
    pub debits_posted: Fen,
    /// Sum of all posted credit legs on the account.
    pub credits_posted: Fen,
}

impl Balance {
    /// `credits_posted - debits_posted` in fen (what a personal account holder sees as balance).
    pub fn credit_balance_fen(self) -> i64 {
        // Both are within 0..=Fen::MAX, so the difference cannot overflow i64.
        self.credits_posted.fen() - self.debits_posted.fen()
    }
}
