//! `Masked`: personal data (ID numbers, names) whose `Debug` and `Display` show only the length.

use std::fmt;

/// A personal-data string (社会保障号码, 姓名). `Debug`/`Display` print `***(N chars)`; the clear
/// value is reachable only through [`Masked::expose`], for the 1101 reply and lookups.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Masked(String);

impl Masked {
    /// Wraps a value.
    pub fn new(value: String) -> Masked {
        Masked(value)
    }

    /// The clear value. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Masked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "***({} chars)", self.0.chars().count())
    }
}

impl fmt::Display for Masked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
