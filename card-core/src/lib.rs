//! The social security card (社会保障卡) in code.
//!
//! - [`apdu`], [`sw`]: ISO/IEC 7816-4 command/response APDUs and status words.
//! - [`transport`]: the one seam to a card ([`transport::CardTransport`]) and the T=0 rules
//!   (61XX/6CXX) applied in one place ([`transport::Session`]).
//! - [`tlv`], [`dol`]: BER-TLV with depth and length limits; DOLs (PDOL/CDOL) and the AFL.
//! - [`ssc`]: the social security application (SSSE, EF05/EF06, `iReadCardBas`); [`auth`]: PIN
//!   VERIFY and the 3rd-generation GET CHALLENGE / INTERNAL / EXTERNAL AUTHENTICATE framing.
//! - [`pboc`]: the PBOC/EMV debit application read flow and GENERATE AC framing.
//! - [`vcard`]: a virtual card answering APDUs from a card image (tests, and `ssc-vcard` for vpcd).
//!
//! **card-core does no I/O except through [`transport::CardTransport`], and never panics on card
//! or reader input**: every malformed byte string is a typed error.
//! The facts it encodes come from `../shared/reference/ssc-card.md` and `card-hsm-anchors.md`.

pub mod apdu;
pub mod auth;
pub mod dol;
pub mod pboc;
pub mod ssc;
pub mod sw;
pub mod tlv;
pub mod transport;
pub mod vcard;

pub use apdu::{ApduError, CommandApdu, ResponseApdu};
pub use sw::StatusWord;
pub use transport::{CardError, CardTransport, Session, TransportError};
