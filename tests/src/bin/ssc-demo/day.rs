//! The day's script, `fixtures/day/day.toml`: named bills and an ordered list of events
//! (hospital and pharmacy visits, card purchases, QR payments). Its README says what each
//! event shows; `tests/tests/demo.rs` computes the day's expected totals from the same file.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// The whole script.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Day {
    /// Bills by name.
    pub bills: BTreeMap<String, Bill>,
    /// Events in the order they happen.
    pub event: Vec<Event>,
}

/// A bill: its fee lines.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bill {
    /// What it is, for people reading the file.
    #[serde(default)]
    #[allow(dead_code)]
    pub about: String,
    /// The lines.
    pub lines: Vec<Line>,
}

/// One fee line as the HIS uploads it (2204/2301).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Line {
    /// 医疗目录编码 (present in every region's fixture catalogue).
    pub code: String,
    /// Quantity.
    pub cnt: u32,
    /// Unit price, yuan text.
    pub pric: String,
}

/// Inpatient or outpatient (pharmacy bills are outpatient at a pharmacy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Setting {
    /// 2201 → 2204 → 2207.
    Outpatient,
    /// 2401 → 2301 → 2402 → 2304.
    Inpatient,
}

/// What happens after the settlement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Then {
    /// The HIS cancels the settlement (2208 / 2305).
    Cancel,
    /// The settlement's reply is lost on the way back (outcome unknown); the HIS reverses it
    /// by its msgid (2601).
    Timeout,
}

/// One event of the day.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Event {
    /// A patient's visit settled at the national interface.
    Visit {
        /// psn_no (fixtures/persons/cards.csv).
        who: String,
        /// A card image label: the card is read at the kiosk through the agent and its PIN
        /// verified first.
        #[serde(default)]
        card: Option<String>,
        /// fixmedins_code (fixtures/institutions/institutions.csv).
        at: String,
        /// Outpatient or inpatient.
        setting: Setting,
        /// A bill name.
        bill: String,
        /// Cancellation or timeout after settling.
        #[serde(default)]
        then: Option<Then>,
    },
    /// A card purchase at a terminal through the agent (card in the reader, GENERATE AC, the
    /// switch, the issuer bank simulator).
    Payment {
        /// A card image label.
        card: String,
        /// Yuan text; the bank simulator declines amounts ending in 51 / 55 / 05 with that code.
        amount: String,
    },
    /// A dynamic QR payment: a partner app signs a token for the card's PAN (SM2), the terminal
    /// scans it and the switch routes the sale to the card's bank.
    Qr {
        /// Partner code (as the switch knows it).
        partner: String,
        /// The card image whose PAN the partner's token carries.
        card: String,
        /// Yuan text.
        amount: String,
    },
}

impl Day {
    /// Reads and checks `path`: every bill an event names exists.
    pub fn load(path: &Path) -> Result<Day> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let day: Day =
            toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        for event in &day.event {
            if let Event::Visit { bill, .. } = event
                && !day.bills.contains_key(bill)
            {
                bail!("{}: no bill named {bill}", path.display());
            }
        }
        Ok(day)
    }
}
