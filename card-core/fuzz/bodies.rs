// The bodies of the cargo-fuzz targets. Included with `include!` by each target in
// fuzz_targets/ and by card-core/tests/fuzz_smoke.rs, so stable Rust runs exactly the same code
// over a seeded corpus. Each body must never panic on any input; the assertions inside check
// round-trip properties and are bugs in card-core if they fire.

/// Command APDU: parsing never panics, and whatever parses re-encodes to an APDU that parses
/// back to the same value.
#[allow(dead_code)]
pub fn apdu_command(data: &[u8]) {
    if let Ok(command) = card_core::CommandApdu::parse(data) {
        let again = card_core::CommandApdu::parse(&command.to_bytes());
        assert_eq!(again.as_ref(), Ok(&command));
        let _ = format!("{command:?}");
    }
}

/// Response APDU: parsing never panics and re-encodes byte for byte.
#[allow(dead_code)]
pub fn apdu_response(data: &[u8]) {
    if let Ok(response) = card_core::ResponseApdu::parse(data) {
        assert_eq!(response.to_bytes(), data);
        let _ = response.sw().meaning();
    }
}

/// BER-TLV: parsing never panics; what parses re-encodes (minimal lengths, no padding) to bytes
/// that parse to the same objects; `find` terminates.
#[allow(dead_code)]
pub fn tlv(data: &[u8]) {
    if let Ok(objects) = card_core::tlv::parse_all(data) {
        let encoded = card_core::tlv::encode_all(&objects);
        assert!(encoded.len() <= data.len());
        assert_eq!(card_core::tlv::parse_all(&encoded).as_ref(), Ok(&objects));
        if let Some(first) = objects.first() {
            assert!(card_core::tlv::find(&objects, first.tag()).is_some());
        }
    }
}

/// DOL and AFL: parsing never panics; a parsed DOL fills to exactly its data length and
/// re-encodes to the input.
#[allow(dead_code)]
pub fn dol_afl(data: &[u8]) {
    if let Ok(dol) = card_core::dol::Dol::parse(data) {
        let filled = dol.fill(&card_core::dol::TerminalData::new());
        assert_eq!(filled.len(), dol.data_len());
        assert_eq!(dol.to_bytes(), data);
    }
    if let Ok(afl) = card_core::dol::parse_afl(data) {
        assert_eq!(afl.len() * 4, data.len());
    }
}

/// SSSE records and card answers of the payment flow: decoding never panics. The input is cut
/// into records: each record takes `1 + (next byte % 40)` bytes and is filed under the next tag
/// of EF05 then EF06.
#[allow(dead_code)]
pub fn ssc_records(data: &[u8]) {
    let mut records = card_core::ssc::RecordSet::new();
    let tags = card_core::ssc::EF05_TAGS
        .iter()
        .chain(card_core::ssc::EF06_TAGS.iter());
    let mut rest = data;
    for tag in tags {
        let Some((&len, tail)) = rest.split_first() else { break };
        let take = (1 + usize::from(len % 40)).min(tail.len());
        let (record, tail) = tail.split_at(take);
        records.insert(*tag, record.to_vec());
        rest = tail;
    }
    let _ = card_core::ssc::CardIdentity::from_records(&records).map(|i| format!("{i:?}"));
    let _ = card_core::ssc::Holder::from_records(&records).map(|h| format!("{h:?}"));
    let _ = card_core::ssc::decode_gbk(0x09, data);
    let _ = card_core::pboc::parse_gpo_response(data);
    let _ = card_core::pboc::parse_generate_ac_response(data);
    let _ = card_core::pboc::ppse_candidates(data);
    let _ = card_core::pboc::pse_record_candidates(data);
}
