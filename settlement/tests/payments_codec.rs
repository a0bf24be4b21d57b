//! The ISO 8583 codec against an independent implementation: every message we pack is decoded by
//! Python's pyiso8583 (tests/bank-sim/bank_sim.py, field table written by hand from the dialect
//! doc) and every message it encodes is unpacked by us, field for field; our MAC (computed by the
//! hsm) is verified by pycryptodome's DES, whose retail MAC is itself checked against the
//! ISO/IEC 9797-1:2011 Annex B.4 vectors (`selftest`). Plus strict-decoding cases and property
//! tests ("never panics", "round-trips").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod payments_support;

use proptest::prelude::*;
use settlement::iso8583::{self, Iso8583Error, Message, Mti, spec};

use payments_support::{BANK_A_MAC_KEY, sim_lines};

/// A deterministic generator of valid field values (xorshift; seed fixed so failures replay).
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).unwrap()).unwrap()
    }
    fn value(&mut self, s: &spec::FieldSpec) -> Vec<u8> {
        let len = match s.len {
            spec::LenForm::Fixed(l) => l,
            spec::LenForm::LlVar(m) | spec::LenForm::LllVar(m) => self.below(m + 1),
        };
        (0..len)
            .map(|_| match s.kind {
                spec::Kind::N => b"0123456789"[self.below(10)],
                spec::Kind::Z => b"0123456789D"[self.below(11)],
                spec::Kind::An => b"0123456789ABCXYZabcz"[self.below(20)],
                spec::Kind::Ans => u8::try_from(0x20 + self.below(95)).unwrap(),
                spec::Kind::B => u8::try_from(self.below(256)).unwrap(),
            })
            .collect()
    }
    fn message(&mut self) -> Message {
        let mtis = [
            b"0100", b"0110", b"0200", b"0210", b"0400", b"0410", b"0800",
        ];
        let mut m = Message::new(Mti::parse(mtis[self.below(mtis.len())]).unwrap());
        for s in spec::FIELDS {
            if s.number != 64 && s.number != 128 && self.below(2) == 0 {
                m.set(s.number, self.value(s));
            }
        }
        m
    }
}

/// What pyiso8583 shows for one of our field values: hex for `b` fields, the text otherwise.
fn python_view(number: u8, value: &[u8]) -> String {
    match spec::field(number).unwrap().kind {
        spec::Kind::B => hex::encode_upper(value),
        _ => String::from_utf8(value.to_vec()).unwrap(),
    }
}

fn mac_with_hsm(hsm: &mut hsm::ops::Hsm, message: &mut Message) -> Vec<u8> {
    let input = iso8583::mac_input(message).unwrap();
    let (mac, _) = hsm
        .generate_mac("test", "bank-a-zak", &input, hsm::mac::Padding::Method1)
        .unwrap();
    let field = iso8583::mac_field(message);
    message.set(field, mac.clone());
    iso8583::pack(message).unwrap()
}

#[test]
fn python_retail_mac_matches_published_vectors() {
    let out = sim_lines("selftest", "00", &[]);
    assert_eq!(out, vec!["selftest ok".to_owned()]);
}

#[test]
fn pyiso8583_decodes_what_we_pack_and_verifies_our_mac() {
    let (_dir, mut hsm) = payments_support::hsm();
    let mut g = Gen(0x9E37_79B9_7F4A_7C15);
    let mut messages = Vec::new();
    let mut lines = Vec::new();
    for _ in 0..200 {
        let mut m = g.message();
        let packed = mac_with_hsm(&mut hsm, &mut m);
        lines.push(hex::encode_upper(&packed));
        messages.push(m);
    }
    let out = sim_lines("decode", BANK_A_MAC_KEY, &lines);
    assert_eq!(out.len(), messages.len());
    for (m, line) in messages.iter().zip(&out) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["ok"], true, "pyiso8583 refused {m:?}: {line}");
        assert_eq!(v["mac_ok"], true, "MAC refused for {m:?}");
        let fields = v["fields"].as_object().unwrap();
        assert_eq!(fields["t"], m.mti.to_string());
        let theirs: Vec<u8> = fields
            .keys()
            .filter(|k| *k != "t")
            .map(|k| k.parse().unwrap())
            .collect::<std::collections::BTreeSet<u8>>()
            .into_iter()
            .collect();
        assert_eq!(theirs, m.numbers().collect::<Vec<_>>());
        for n in m.numbers() {
            assert_eq!(
                fields[&n.to_string()],
                python_view(n, m.get(n).unwrap()),
                "field {n}"
            );
        }
    }
    // One flipped byte in the covered part: the independent MAC check must fail.
    let mut bad = hex::decode(&lines[0]).unwrap();
    bad[3] ^= 0x01;
    let out = sim_lines("decode", BANK_A_MAC_KEY, &[hex::encode_upper(&bad)]);
    let v: serde_json::Value = serde_json::from_str(&out[0]).unwrap();
    assert!(v["ok"] == false || v["mac_ok"] == false);
}

#[test]
fn we_unpack_what_pyiso8583_encodes() {
    let (_dir, mut hsm) = payments_support::hsm();
    let mut g = Gen(0xD1B5_4A32_D192_ED03);
    let mut messages = Vec::new();
    let mut lines = Vec::new();
    for _ in 0..200 {
        let m = g.message();
        let mut json = serde_json::Map::new();
        json.insert("t".into(), m.mti.to_string().into());
        for n in m.numbers() {
            json.insert(n.to_string(), python_view(n, m.get(n).unwrap()).into());
        }
        lines.push(serde_json::Value::Object(json).to_string());
        messages.push(m);
    }
    let out = sim_lines("encode", BANK_A_MAC_KEY, &lines);
    for (m, line) in messages.iter().zip(&out) {
        let packed = hex::decode(line).unwrap();
        let ours = iso8583::unpack(&packed).unwrap();
        let mut expected = m.clone();
        let field = iso8583::mac_field(m);
        let (covered, mac) = iso8583::split_mac(&packed, &ours).unwrap();
        expected.set(field, mac.to_vec());
        assert_eq!(ours, expected);
        hsm.verify_mac(
            "test",
            "bank-a-zak",
            covered,
            mac,
            hsm::mac::Padding::Method1,
        )
        .expect("pycryptodome's MAC verifies in the hsm");
    }
}

/// 0800 sign-on by hand (ISO 8583:1987 layout, our dialect doc): MTI 08 00; bitmap bits 1, 7,
/// 11, 41 = 82 20 00 00 00 80 00 00; secondary bit 70 (and 128) = 04 00 .. 01; field 7 BCD;
/// 11 BCD; 41 ASCII; 70 = "001" left-padded to 00 01; then the 8-byte MAC.
#[test]
fn sign_on_bytes_by_hand() {
    let mut m = Message::new(Mti::NETWORK_REQUEST)
        .with(7, *b"1130120000")
        .with(11, *b"000001")
        .with(41, *b"T0000001")
        .with(70, *b"001")
        .with(128, [0xAAu8; 8]);
    let packed = iso8583::pack(&m).unwrap();
    let expected = "0800\
        8220000000800000\
        0400000000000001\
        1130120000\
        000001\
        5430303030303031\
        0001\
        AAAAAAAAAAAAAAAA";
    assert_eq!(hex::encode_upper(&packed), expected);
    assert_eq!(iso8583::unpack(&packed).unwrap(), m);
    assert_eq!(iso8583::mac_field(&m), 128);
    m.remove(70);
    m.remove(128);
    assert_eq!(iso8583::mac_field(&m), 64);
}

#[test]
fn strict_decoding_refuses_what_is_not_there() {
    let m = Message::new(Mti::FINANCIAL_REQUEST)
        .with(2, *b"6214830200000087653")
        .with(4, *b"000000001000")
        .with(11, *b"000123");
    let packed = iso8583::pack(&m).unwrap();
    // PAN: LLVAR 19 digits -> 0x19 then 10 bytes, right pad F.
    assert_eq!(
        &packed[10..21],
        &hex::decode("196214830200000087653F").unwrap()[..]
    );
    // A bitmap announcing field 11 whose bytes are missing.
    let cut = &packed[..packed.len() - 3];
    assert_eq!(
        iso8583::unpack(cut),
        Err(Iso8583Error::Truncated { number: 11 })
    );
    // The bitmap announces field 5, which the dialect lacks.
    let mut extra = packed.clone();
    extra[2] |= 0x08;
    assert_eq!(
        iso8583::unpack(&extra),
        Err(Iso8583Error::UnknownField { number: 5 })
    );
    // Trailing bytes.
    let mut long = packed.clone();
    long.push(0);
    assert_eq!(
        iso8583::unpack(&long),
        Err(Iso8583Error::TrailingBytes { len: 1 })
    );
    // A PAN length prefix of 20 (max 19).
    let mut pan20 = packed.clone();
    pan20[10] = 0x20;
    assert!(matches!(
        iso8583::unpack(&pan20),
        Err(Iso8583Error::Value { number: 2, .. })
    ));
    // A non-BCD nibble in the amount.
    let mut nibble = packed.clone();
    nibble[21] = 0x0A;
    assert!(matches!(
        iso8583::unpack(&nibble),
        Err(Iso8583Error::Value { number: 4, .. })
    ));
    // Wrong pad nibble on the odd PAN.
    let mut pad = packed;
    pad[20] = 0x30;
    assert!(matches!(
        iso8583::unpack(&pad),
        Err(Iso8583Error::Value { number: 2, .. })
    ));
    // Packing refuses letters in a numeric field and a wrong fixed length.
    let bad = Message::new(Mti::AUTH_REQUEST).with(4, *b"00000000100A");
    assert!(iso8583::pack(&bad).is_err());
    let bad = Message::new(Mti::AUTH_REQUEST).with(11, *b"12345");
    assert!(iso8583::pack(&bad).is_err());
}

#[test]
fn debug_never_shows_the_pan() {
    let m = Message::new(Mti::FINANCIAL_REQUEST).with(2, *b"6214830200000087653");
    let shown = format!("{m:?}");
    assert!(!shown.contains("6214830200000087653"), "{shown}");
    assert!(shown.contains("19 bytes"));
}

proptest! {
    #[test]
    fn icc_field55_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = settlement::payments::icc::parse(&bytes);
    }

    #[test]
    fn clearing_file_parser_never_panics(text in "[HD|0-9A-Za-z_*\n-]{0,400}") {
        let _ = settlement::payments::clearing::parse(&text);
    }

    #[test]
    fn unpack_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = iso8583::unpack(&bytes);
    }

    #[test]
    fn pack_unpack_round_trips(seed in 1u64..u64::MAX) {
        let m = Gen(seed).message();
        let packed = iso8583::pack(&m).unwrap();
        prop_assert_eq!(iso8583::unpack(&packed).unwrap(), m);
    }

    #[test]
    fn mutated_valid_messages_never_panic(seed in 1u64..u64::MAX, at in 0usize..400, byte in any::<u8>()) {
        let m = Gen(seed).message();
        let mut packed = iso8583::pack(&m).unwrap();
        let i = at % packed.len();
        packed[i] = byte;
        let _ = iso8583::unpack(&packed);
    }
}
