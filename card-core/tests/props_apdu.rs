//! Property tests for ISO 7816-4 APDUs: every command of every case, short and extended,
//! round-trips through its encoding; responses round-trip; arbitrary bytes never panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use card_core::apdu::{APDU_NE_MAX, APDU_SHORT_NC_MAX, APDU_SHORT_NE_MAX};
use card_core::{CommandApdu, ResponseApdu, StatusWord};
use proptest::prelude::*;

fn command() -> impl Strategy<Value = CommandApdu> {
    let data = prop_oneof![
        3 => proptest::collection::vec(any::<u8>(), 0..=APDU_SHORT_NC_MAX),
        1 => proptest::collection::vec(any::<u8>(), 256..=700),
    ];
    let ne = prop_oneof![
        Just(None),
        (1..=APDU_SHORT_NE_MAX).prop_map(Some),
        (APDU_SHORT_NE_MAX + 1..=APDU_NE_MAX).prop_map(Some),
        Just(Some(APDU_NE_MAX)),
    ];
    (any::<[u8; 4]>(), data, ne).prop_map(|([cla, ins, p1, p2], data, ne)| {
        let c = CommandApdu::new(cla, ins, p1, p2).with_data(data).unwrap();
        match ne {
            Some(ne) => c.with_ne(ne).unwrap(),
            None => c,
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn command_apdus_round_trip(c in command()) {
        let bytes = c.to_bytes();
        let parsed = CommandApdu::parse(&bytes).unwrap();
        prop_assert_eq!(&parsed, &c);
        // The encoding is short exactly when Nc <= 255 and Ne <= 256 (ISO 7816-4 §5.1).
        let short = c.data().len() <= APDU_SHORT_NC_MAX
            && c.ne().is_none_or(|ne| ne <= APDU_SHORT_NE_MAX);
        prop_assert_eq!(!short, c.is_extended());
        let expected_len = 4
            + match (c.data().len(), c.ne(), short) {
                (0, None, _) => 0,
                (0, Some(_), true) => 1,
                (0, Some(_), false) => 3,
                (n, None, true) => 1 + n,
                (n, None, false) => 3 + n,
                (n, Some(_), true) => 2 + n,
                (n, Some(_), false) => 5 + n,
            };
        prop_assert_eq!(bytes.len(), expected_len);
    }

    #[test]
    fn command_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(c) = CommandApdu::parse(&bytes) {
            prop_assert_eq!(CommandApdu::parse(&c.to_bytes()).unwrap(), c);
        }
    }

    #[test]
    fn response_apdus_round_trip(data in proptest::collection::vec(any::<u8>(), 0..600), sw in any::<u16>()) {
        let r = ResponseApdu::new(data.clone(), StatusWord::from_u16(sw));
        let bytes = r.to_bytes();
        prop_assert_eq!(bytes.len(), data.len() + 2);
        prop_assert_eq!(ResponseApdu::parse(&bytes).unwrap(), r);
    }

    #[test]
    fn response_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        match ResponseApdu::parse(&bytes) {
            Ok(r) => prop_assert_eq!(r.to_bytes(), bytes),
            Err(_) => prop_assert!(bytes.len() < 2),
        }
    }
}
