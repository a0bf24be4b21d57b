//! An ISO 8583 message as the switch handles it: the MTI and the present fields' values in
//! their logical form (digits/text as ASCII bytes, `b` fields as raw bytes). `Debug` never shows
//! a sensitive field's value (PAN, track 2, ICC data), only its length.

use std::collections::BTreeMap;
use std::fmt;

use super::Iso8583Error;
use super::spec;

/// A message type indicator: 4 decimal digits (ISO 8583:1987 §4.1.1), e.g. `0100`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mti([u8; 4]);

impl Mti {
    /// Authorisation request.
    pub const AUTH_REQUEST: Mti = Mti(*b"0100");
    /// Authorisation response.
    pub const AUTH_RESPONSE: Mti = Mti(*b"0110");
    /// Financial transaction request (purchase, refund, void).
    pub const FINANCIAL_REQUEST: Mti = Mti(*b"0200");
    /// Financial transaction response.
    pub const FINANCIAL_RESPONSE: Mti = Mti(*b"0210");
    /// Reversal request.
    pub const REVERSAL_REQUEST: Mti = Mti(*b"0400");
    /// Reversal response.
    pub const REVERSAL_RESPONSE: Mti = Mti(*b"0410");
    /// Network management request (sign-on, echo).
    pub const NETWORK_REQUEST: Mti = Mti(*b"0800");
    /// Network management response.
    pub const NETWORK_RESPONSE: Mti = Mti(*b"0810");

    /// From 4 ASCII digits. Errors: [`Iso8583Error::BadMti`].
    pub fn parse(text: &[u8]) -> Result<Mti, Iso8583Error> {
        let digits: [u8; 4] = text.try_into().map_err(|_| Iso8583Error::BadMti)?;
        if digits.iter().all(u8::is_ascii_digit) {
            Ok(Mti(digits))
        } else {
            Err(Iso8583Error::BadMti)
        }
    }

    /// The 4 ASCII digits.
    #[must_use]
    pub fn digits(&self) -> &[u8; 4] {
        &self.0
    }

    /// The response MTI of a request (third digit + 1: `0100` → `0110`); `None` for a
    /// response or an MTI whose third digit is odd.
    #[must_use]
    pub fn response(self) -> Option<Mti> {
        let mut d = self.0;
        if d[2] % 2 == 1 {
            return None;
        }
        d[2] += 1;
        Some(Mti(d))
    }
}

impl fmt::Debug for Mti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Mti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Always 4 ASCII digits (checked by `parse`).
        f.write_str(std::str::from_utf8(&self.0).unwrap_or("????"))
    }
}

/// A message: MTI and fields 2..=128 by number (bitmaps are derived when packing).
#[derive(Clone, PartialEq, Eq)]
pub struct Message {
    /// The message type.
    pub mti: Mti,
    fields: BTreeMap<u8, Vec<u8>>,
}

impl Message {
    /// An empty message of type `mti`.
    #[must_use]
    pub fn new(mti: Mti) -> Message {
        Message {
            mti,
            fields: BTreeMap::new(),
        }
    }

    /// Sets field `number` (checked against the table when packing).
    pub fn set(&mut self, number: u8, value: impl Into<Vec<u8>>) -> &mut Message {
        self.fields.insert(number, value.into());
        self
    }

    /// Builder form of [`Message::set`].
    #[must_use]
    pub fn with(mut self, number: u8, value: impl Into<Vec<u8>>) -> Message {
        self.set(number, value);
        self
    }

    /// Removes field `number`, returning its value.
    pub fn remove(&mut self, number: u8) -> Option<Vec<u8>> {
        self.fields.remove(&number)
    }

    /// The raw value of field `number`.
    #[must_use]
    pub fn get(&self, number: u8) -> Option<&[u8]> {
        self.fields.get(&number).map(Vec::as_slice)
    }

    /// The value of a text field (`n`, `z`, `an`, `ans`) as `&str`.
    #[must_use]
    pub fn text(&self, number: u8) -> Option<&str> {
        self.get(number).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Present field numbers, ascending.
    pub fn numbers(&self) -> impl Iterator<Item = u8> + '_ {
        self.fields.keys().copied()
    }

    pub(crate) fn fields(&self) -> &BTreeMap<u8, Vec<u8>> {
        &self.fields
    }
}

impl fmt::Debug for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        map.entry(&"mti", &self.mti.to_string());
        for (number, value) in &self.fields {
            let spec = spec::field(*number);
            let shown = match spec {
                Some(s) if s.sensitive => format!("<{} bytes>", value.len()),
                Some(s) if s.kind == spec::Kind::B => hex::encode_upper(value),
                Some(_) => String::from_utf8_lossy(value).into_owned(),
                None => format!("<unknown, {} bytes>", value.len()),
            };
            map.entry(number, &shown);
        }
        map.finish()
    }
}
