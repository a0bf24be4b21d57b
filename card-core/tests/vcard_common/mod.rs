//! Helpers shared by the virtual-card integration tests: the fixture images and a session over
//! an in-process card.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use card_core::vcard::{CardImage, VirtualCard};
use card_core::{CommandApdu, ResponseApdu, Session, StatusWord};

/// The Tianjin 3.00 image (SM4 PBOC, answers directly when Le allows).
pub const TIANJIN: &str = include_str!("../../../fixtures/cards/tianjin-3g.toml");
/// The Beijing 2.00 image (3DES PBOC, long name with 姓名扩展).
pub const BEIJING: &str = include_str!("../../../fixtures/cards/beijing-2g.toml");
/// The Hebei 3.00 image (strict T=0, rare GBK character).
pub const HEBEI: &str = include_str!("../../../fixtures/cards/hebei-3g.toml");

/// A fresh card from an image text, with a fixed challenge seed.
pub fn card(image: &str) -> VirtualCard {
    VirtualCard::new(CardImage::from_toml_str(image).unwrap(), 7)
}

/// A session over a fresh card.
pub fn session(image: &str) -> Session<VirtualCard> {
    Session::new(card(image))
}

/// Hex (spaces allowed) to bytes.
pub fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

/// Parses a command APDU written in hex.
pub fn apdu(s: &str) -> CommandApdu {
    CommandApdu::parse(&h(s)).unwrap()
}

/// Exchanges a hex APDU through the session (61XX/6CXX followed).
pub fn x(session: &mut Session<VirtualCard>, s: &str) -> ResponseApdu {
    session.exchange(&apdu(s)).unwrap()
}

/// Exchanges and asserts 9000; returns the data.
pub fn ok(session: &mut Session<VirtualCard>, s: &str) -> Vec<u8> {
    let r = x(session, s);
    assert_eq!(r.sw(), StatusWord::SUCCESS, "APDU {s}");
    r.into_data()
}

/// SELECT SSSE `00 A4 04 00 0F sx1.sh.社会保障` (ssc-card.md §4).
pub const SELECT_SSSE: &str = "00A404000F7378312E73682EC9E7BBE1B1A3D5CF";
