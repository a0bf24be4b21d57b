//! Property tests for BER-TLV, DOLs and AFLs: parse(build(x)) == x, agreement with the
//! `iso7816-tlv` crate's own parser on what we build, and "never panics" on arbitrary bytes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use card_core::dol::{AflEntry, Dol, DolEntry, TerminalData, parse_afl};
use card_core::tlv::{self, Tag, Tlv, Value};
use proptest::prelude::*;

/// Valid tag bytes with the constructed bit forced to `constructed`.
fn tag(constructed: bool) -> impl Strategy<Value = Tag> {
    let bit = if constructed { 0x20 } else { 0x00 };
    let one = any::<u8>()
        .prop_map(move |b| (b & !0x20) | bit)
        .prop_filter("valid one-byte tag", |b| {
            b & 0x1F != 0x1F && *b != 0 && *b != 0xFF
        })
        .prop_map(|b| vec![b]);
    let first = (0u8..8)
        .prop_map(move |class| (class << 5 & 0xC0) | bit | 0x1F)
        .prop_filter("not FF", |b| *b != 0xFF);
    let two = (first.clone(), 0u8..0x80).prop_map(|(a, b)| vec![a, b]);
    let three = (first, 0x80u8..=0xFF, 0u8..0x80).prop_map(|(a, b, c)| vec![a, b, c]);
    prop_oneof![one, two, three].prop_map(|bytes| Tag::from_bytes(&bytes).unwrap())
}

fn tlv_tree() -> impl Strategy<Value = Tlv> {
    let leaf = (tag(false), proptest::collection::vec(any::<u8>(), 0..300))
        .prop_map(|(t, v)| Tlv::primitive(t, v).unwrap());
    leaf.prop_recursive(4, 40, 5, |inner| {
        (tag(true), proptest::collection::vec(inner, 0..5))
            .prop_map(|(t, children)| Tlv::constructed(t, children).unwrap())
    })
}

/// Our tree from the `iso7816-tlv` crate's tree.
fn from_crate(object: &iso7816_tlv::ber::Tlv) -> Tlv {
    let t = Tag::from_bytes(object.tag().to_bytes()).unwrap();
    match object.value() {
        iso7816_tlv::ber::Value::Primitive(v) => Tlv::primitive(t, v.clone()).unwrap(),
        iso7816_tlv::ber::Value::Constructed(children) => {
            Tlv::constructed(t, children.iter().map(from_crate).collect()).unwrap()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1_000))]

    #[test]
    fn tlv_round_trips(objects in proptest::collection::vec(tlv_tree(), 0..4)) {
        let bytes = tlv::encode_all(&objects);
        prop_assert_eq!(tlv::parse_all(&bytes).unwrap(), objects.clone());
        // Padding between and around objects changes nothing.
        let mut padded = vec![0x00, 0xFF];
        for o in &objects {
            padded.extend(o.to_bytes());
            padded.push(0x00);
        }
        prop_assert_eq!(tlv::parse_all(&padded).unwrap(), objects);
    }

    #[test]
    fn tlv_agrees_with_the_iso7816_tlv_crate(object in tlv_tree()) {
        let bytes = object.to_bytes();
        let theirs = iso7816_tlv::ber::Tlv::from_bytes(&bytes).unwrap();
        prop_assert_eq!(from_crate(&theirs), object);
    }

    #[test]
    fn find_sees_every_object(object in tlv_tree()) {
        fn all(o: &Tlv, out: &mut Vec<Tag>) {
            out.push(o.tag());
            if let Value::Constructed(children) = o.value() {
                for c in children { all(c, out); }
            }
        }
        let mut tags = Vec::new();
        all(&object, &mut tags);
        for t in tags {
            prop_assert_eq!(object.find(t).map(Tlv::tag), Some(t));
        }
    }

    #[test]
    fn tlv_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = tlv::parse_all(&bytes);
        let _ = Tlv::from_bytes(&bytes);
    }

    #[test]
    fn dol_round_trips_and_fills_to_its_length(
        entries in proptest::collection::vec((tag(false), 0u8..20), 0..12)
    ) {
        let dol = Dol::from_entries(entries.iter().map(|(tag, len)| DolEntry { tag: *tag, len: *len }).collect()).unwrap();
        prop_assert_eq!(Dol::parse(&dol.to_bytes()).unwrap(), dol.clone());
        let mut data = TerminalData::new();
        for (i, (t, _)) in entries.iter().enumerate() {
            if i % 2 == 0 { data.set(*t, vec![0x12; i]); }
        }
        prop_assert_eq!(dol.fill(&data).len(), dol.data_len());
    }

    #[test]
    fn dol_and_afl_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Dol::parse(&bytes).map(|d| d.fill(&TerminalData::new()));
        if let Ok(afl) = parse_afl(&bytes) {
            for AflEntry { sfi, first_record, last_record, oda_records } in afl {
                prop_assert!((1..=30).contains(&sfi));
                prop_assert!(first_record >= 1 && first_record <= last_record);
                prop_assert!(oda_records <= last_record - first_record + 1);
            }
        }
    }
}
