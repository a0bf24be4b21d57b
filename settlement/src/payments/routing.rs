//! The BIN routing table (fixtures/banks/routing.toml): issuer banks (host, MAC key alias,
//! per-hop timeout) and BIN ranges (PAN prefix → bank, issuer master key alias, algorithm).
//! Lookup is longest-prefix; the per-hop timeout must stay below the terminal's.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Deserialize;

use super::PaymentError;

/// Most banks and ranges in one table.
pub const ROUTES_MAX: usize = 1_000;

/// The card algorithm of a BIN range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CardAlgorithm {
    /// 3DES, EMV option A master key derivation, PBOC session key.
    Tdes,
    /// PBOC 3.0 SM4 (unverified derivation: no public vector, card-hsm-anchors.md §4).
    Sm4,
}

/// One issuer bank.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bank {
    /// Code (also the code of its ledger clearing account), `[A-Za-z0-9]`, 1..=32.
    pub code: String,
    /// Display name.
    pub name: String,
    /// The issuer host.
    pub host: SocketAddr,
    /// HSM alias of the bank's MAC key (M3).
    pub mac_key: String,
    /// Per-hop timeout, ms.
    pub timeout_ms: u64,
    /// Field 32 (acquiring institution id), digits.
    pub acquirer_id: String,
}

/// One BIN range.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    /// Leading PAN digits, 1..=12.
    pub bin_prefix: String,
    /// The bank's code.
    pub bank: String,
    /// HSM alias of the issuer master key for AC (E0).
    pub imk_ac: String,
    /// Card algorithm.
    pub algorithm: CardAlgorithm,
}

/// The whole table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingTable {
    /// The terminals' own timeout, ms; every bank's `timeout_ms` must be shorter.
    pub terminal_timeout_ms: u64,
    /// Banks.
    #[serde(rename = "bank")]
    pub banks: Vec<Bank>,
    /// BIN ranges.
    #[serde(rename = "range")]
    pub ranges: Vec<Range>,
}

/// Where a card goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route<'a> {
    /// The issuer bank.
    pub bank: &'a Bank,
    /// The BIN range matched.
    pub range: &'a Range,
}

impl RoutingTable {
    /// Parses and checks a table (TOML text).
    ///
    /// Errors: [`PaymentError::Config`] for bad TOML, unknown banks, duplicate codes or
    /// prefixes, a prefix that is not 1..=12 digits, a bank timeout not below the terminal's.
    pub fn from_toml(text: &str) -> Result<RoutingTable, PaymentError> {
        let table: RoutingTable =
            toml::from_str(text).map_err(|e| PaymentError::Config(e.message().to_owned()))?;
        table.check()?;
        Ok(table)
    }

    fn check(&self) -> Result<(), PaymentError> {
        let bad = |m: String| Err(PaymentError::Config(m));
        if self.banks.len() > ROUTES_MAX || self.ranges.len() > ROUTES_MAX {
            return bad(format!("more than {ROUTES_MAX} banks or ranges"));
        }
        let mut codes = BTreeMap::new();
        for bank in &self.banks {
            let code_ok = !bank.code.is_empty()
                && bank.code.len() <= 32
                && bank.code.bytes().all(|b| b.is_ascii_alphanumeric());
            if !code_ok || codes.insert(bank.code.as_str(), ()).is_some() {
                return bad(format!(
                    "bank code {:?} is malformed or repeated",
                    bank.code
                ));
            }
            if bank.timeout_ms == 0 || bank.timeout_ms >= self.terminal_timeout_ms {
                return bad(format!(
                    "bank {}: timeout_ms must be > 0 and below the terminal's {} ms",
                    bank.code, self.terminal_timeout_ms
                ));
            }
            let id_ok = (1..=11).contains(&bank.acquirer_id.len())
                && bank.acquirer_id.bytes().all(|b| b.is_ascii_digit());
            if !id_ok {
                return bad(format!(
                    "bank {}: acquirer_id must be 1..=11 digits",
                    bank.code
                ));
            }
        }
        let mut prefixes = BTreeMap::new();
        for range in &self.ranges {
            let ok = (1..=12).contains(&range.bin_prefix.len())
                && range.bin_prefix.bytes().all(|b| b.is_ascii_digit());
            if !ok || prefixes.insert(range.bin_prefix.as_str(), ()).is_some() {
                return bad(format!(
                    "BIN prefix {:?} is malformed or repeated",
                    range.bin_prefix
                ));
            }
            if !codes.contains_key(range.bank.as_str()) {
                return bad(format!(
                    "BIN prefix {} names unknown bank {}",
                    range.bin_prefix, range.bank
                ));
            }
        }
        Ok(())
    }

    /// The route of `pan` (longest matching prefix).
    ///
    /// Errors: [`PaymentError::NoRoute`].
    pub fn route(&self, pan: &str) -> Result<Route<'_>, PaymentError> {
        let range = self
            .ranges
            .iter()
            .filter(|r| pan.starts_with(&r.bin_prefix))
            .max_by_key(|r| r.bin_prefix.len())
            .ok_or(PaymentError::NoRoute)?;
        let bank = self.bank(&range.bank).ok_or(PaymentError::NoRoute)?;
        Ok(Route { bank, range })
    }

    /// The bank with this code.
    #[must_use]
    pub fn bank(&self, code: &str) -> Option<&Bank> {
        self.banks.iter().find(|b| b.code == code)
    }

    /// Points bank `code` at `host` (tests and deployments that bind ports at start).
    pub fn set_host(&mut self, code: &str, host: SocketAddr) {
        if let Some(bank) = self.banks.iter_mut().find(|b| b.code == code) {
            bank.host = host;
        }
    }
}
