//! The virtual card never panics: any byte string gets an answer of at least two bytes ending in
//! a status word, on every card image, in any state (a random command sequence builds the state).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod vcard_common;

use card_core::vcard::vpcd::{self, VpcdRequest};
use proptest::prelude::*;
use vcard_common::*;

/// Commands that move the card into interesting states before the random input arrives.
const PRELUDES: &[&str] = &[
    SELECT_SSSE,
    "00A4020002EF05",
    "00A4020002EF06",
    "0084000008",
    "00A404000E315041592E5359532E444446303100",
    "00A4040008A00000033301010100",
    "80A80000028300 00",
    "80A800000B8309 00 000000010000 0156 00",
];

fn arbitrary_command() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Anything at all.
        proptest::collection::vec(any::<u8>(), 0..300),
        // Plausible headers with random bodies: reaches the handlers, not just the parser.
        (
            prop_oneof![Just(0x00u8), Just(0x80u8), any::<u8>()],
            prop_oneof![
                Just(0xA4u8),
                Just(0xB2),
                Just(0x20),
                Just(0x5E),
                Just(0x84),
                Just(0x88),
                Just(0x82),
                Just(0xA8),
                Just(0xAE),
                Just(0xC0),
                any::<u8>()
            ],
            any::<u8>(),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..64),
            proptest::option::of(any::<u8>()),
        )
            .prop_map(|(cla, ins, p1, p2, data, le)| {
                let mut out = vec![cla, ins, p1, p2];
                if !data.is_empty() {
                    out.push(u8::try_from(data.len()).unwrap());
                    out.extend(data);
                }
                out.extend(le);
                out
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_get_a_status_word_and_never_a_panic(
        image in 0usize..3,
        prelude in proptest::collection::vec(0usize..PRELUDES.len(), 0..4),
        commands in proptest::collection::vec(arbitrary_command(), 1..8),
    ) {
        let mut card = card([TIANJIN, BEIJING, HEBEI][image]);
        for i in prelude {
            card.process(&h(&PRELUDES[i].replace(' ', "")));
        }
        for command in commands {
            let answer = card.process(&command);
            prop_assert!(answer.len() >= 2);
            let sw1 = answer[answer.len() - 2];
            // Every SW1 the card uses is in ISO 7816-4's 61..6F or 90 ranges.
            prop_assert!((0x61..=0x6F).contains(&sw1) || sw1 == 0x90, "SW1 {sw1:02X}");
            // The vpcd layer answers the same way (1-byte payloads are control messages).
            let request = VpcdRequest::from_payload(&command);
            if let Some(reply) = vpcd::handle(&mut card, request) {
                prop_assert!(reply.len() >= 2);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The image loader is a parser of file input: it never panics, on noise or on a fixture
    /// with one byte changed.
    #[test]
    fn image_loader_never_panics(
        noise in ".{0,400}",
        image in 0usize..3,
        at in any::<proptest::sample::Index>(),
        byte in 0x20u8..0x7F,
    ) {
        let _ = card_core::vcard::CardImage::from_toml_str(&noise);
        let mut text = [TIANJIN, BEIJING, HEBEI][image].as_bytes().to_vec();
        let i = at.index(text.len());
        text[i] = byte;
        if let Ok(text) = String::from_utf8(text)
            && let Ok(image) = card_core::vcard::CardImage::from_toml_str(&text)
        {
            let mut card = card_core::vcard::VirtualCard::new(image, 1);
            prop_assert!(card.process(&h(SELECT_SSSE)).len() >= 2);
        }
    }
}
