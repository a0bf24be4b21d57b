//! `transport::Session`'s T=0 rules: 61XX chaining with GET RESPONSE, one 6CXX resend with the
//! exact Le, and the follow bound (ISO 7816-4 §5.1.3 / ISO 7816-3 T=0; card-hsm-anchors.md §0.2).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod scripted;

use card_core::transport::TRANSPORT_FOLLOW_MAX;
use card_core::{CardTransport, CommandApdu, Session, StatusWord, TransportError};
use scripted::{h, session};

#[test]
fn chained_61xx_pieces_are_concatenated() {
    // SELECT SSSE answered in three pieces: 61 10 → 16 bytes + 61 05 → 5 bytes + 90 00.
    let mut s = session(&[
        ("00A404000F7378312E73682EC9E7BBE1B1A3D5CF", "6110"),
        ("00C0000010", "000102030405060708090A0B0C0D0E0F 6105"),
        ("00C0000005", "1011121314 9000"),
    ]);
    let select = CommandApdu::parse(&h("00A404000F7378312E73682EC9E7BBE1B1A3D5CF")).unwrap();
    let response = s.exchange(&select).unwrap();
    assert_eq!(response.sw(), StatusWord::SUCCESS);
    assert_eq!(response.data(), (0u8..=0x14).collect::<Vec<_>>());
    s.transport_mut().assert_finished();
}

#[test]
fn get_response_keeps_the_logical_channel_bits_of_cla() {
    // CLA 01 (channel 1): GET RESPONSE must go on the same channel.
    let mut s = session(&[("01B2010C00", "6102"), ("01C0000002", "7000 9000")]);
    let read = CommandApdu::parse(&h("01B2010C00")).unwrap();
    assert_eq!(s.exchange(&read).unwrap().data(), &[0x70, 0x00]);
}

#[test]
fn wrong_le_6cxx_is_resent_once_with_the_exact_le() {
    // READ RECORD tag 08 with Le 14; the card wants Le 12.
    let mut s = session(&[
        ("00B2080014", "6C12"),
        ("00B2080012", "0810 31323334353637383930313233343536 9000"),
    ]);
    let read = CommandApdu::parse(&h("00B2080014")).unwrap();
    let response = s.exchange(&read).unwrap();
    assert_eq!(response.sw(), StatusWord::SUCCESS);
    assert_eq!(response.data().len(), 0x12);
    s.transport_mut().assert_finished();
}

#[test]
fn a_second_6cxx_is_handed_to_the_caller() {
    let mut s = session(&[("00B2080014", "6C12"), ("00B2080012", "6C10")]);
    let read = CommandApdu::parse(&h("00B2080014")).unwrap();
    let response = s.exchange(&read).unwrap();
    assert_eq!(response.sw(), StatusWord::from_u16(0x6C10));
    assert!(response.data().is_empty());
}

/// A broken card that answers every command with `61 01` and one byte: it would chain forever.
struct AlwaysMore {
    transmits: usize,
}

impl CardTransport for AlwaysMore {
    fn transmit(&mut self, _command: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.transmits += 1;
        Ok(vec![0xAA, 0x61, 0x01])
    }
}

#[test]
fn a_card_that_always_answers_6101_ends_in_chain_too_long() {
    let mut s = Session::new(AlwaysMore { transmits: 0 });
    let result = s.exchange(&CommandApdu::new(0x00, 0x84, 0x00, 0x00).with_ne(8).unwrap());
    assert_eq!(result, Err(TransportError::ChainTooLong));
    // The first command plus TRANSPORT_FOLLOW_MAX GET RESPONSEs, no more.
    assert_eq!(s.transport_mut().transmits, TRANSPORT_FOLLOW_MAX + 1);
}

#[test]
fn exchange_ok_turns_other_status_words_into_typed_errors() {
    let mut s = session(&[("00A4020002EF07", "6A82")]);
    let select = CommandApdu::parse(&h("00A4020002EF07")).unwrap();
    let err = s.exchange_ok(&select).unwrap_err();
    assert_eq!(
        err,
        card_core::CardError::Status {
            ins: 0xA4,
            sw: StatusWord::FILE_NOT_FOUND
        }
    );
}

#[test]
fn a_one_byte_answer_is_a_typed_error() {
    let mut s = session(&[("0084000008", "90")]);
    let challenge = CommandApdu::parse(&h("0084000008")).unwrap();
    assert!(matches!(
        s.exchange(&challenge),
        Err(TransportError::Apdu(_))
    ));
}
