//! Ledger accounts the medical layer posts to, created on first use and cached (creation is
//! idempotent in the ledger, so two processes creating the same account agree).
//!
//! All legs of one settlement are in the INSURED region's ledger (参保地): its funds, the
//! person's personal account, the patient-cash account, and a receivable of the treating
//! institution kept in that region's books (code = `fixmedins_code`). Cross-region clearing
//! toward the treating region's agency (monthly, medical-settlement.md §3.1) is outside this issue.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::account::{AccountFlags, AccountKind, AccountSpec};
use crate::error::LedgerError;
use crate::ids::{AccountCode, AccountId, Admdvs, FundPayType};
use crate::ledger::Ledger;

/// Code of the patient-cash collection account (one per region).
const CASH_CODE: &str = "COUNTER";

/// Cache of account ids by spec (bounded by the number of accounts in use).
#[derive(Debug, Default)]
pub(crate) struct AccountCache {
    map: Mutex<HashMap<AccountSpec, AccountId>>,
}

impl AccountCache {
    /// The id of `spec`, creating the account if needed.
    pub(crate) async fn id(
        &self,
        ledger: &Ledger,
        spec: AccountSpec,
    ) -> Result<AccountId, LedgerError> {
        if let Some(id) = self.lookup(&spec) {
            return Ok(id);
        }
        let account = ledger.create_account(&spec).await?;
        self.map
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .insert(spec, account.id);
        Ok(account.id)
    }

    fn lookup(&self, spec: &AccountSpec) -> Option<AccountId> {
        self.map
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .get(spec)
            .copied()
    }
}

/// A region's fund account.
pub(crate) fn fund(admdvs: Admdvs, fund: FundPayType) -> AccountSpec {
    AccountSpec::fund(admdvs, fund)
}

/// The patient-cash account of a region.
pub(crate) fn cash(admdvs: Admdvs) -> Result<AccountSpec, LedgerError> {
    let code = AccountCode::parse(CASH_CODE)?;
    Ok(AccountSpec::new(
        admdvs,
        AccountKind::PatientCash,
        code,
        AccountFlags::default(),
    )?)
}

/// An institution's receivable in a region's books.
pub(crate) fn institution(
    admdvs: Admdvs,
    fixmedins_code: &str,
) -> Result<AccountSpec, LedgerError> {
    let code = AccountCode::parse(fixmedins_code)?;
    Ok(AccountSpec::new(
        admdvs,
        AccountKind::InstitutionReceivable,
        code,
        AccountFlags::default(),
    )?)
}
