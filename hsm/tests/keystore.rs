//! Key store durability: persist and reopen, a crash at every byte of the last record, a wrong
//! LMK, an altered record, and no key material in Debug output.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hsm::keystore::journal::JOURNAL_FILE;
use hsm::keystore::{
    Exportability, KeyAlgorithm, KeyHeader, KeyState, KeyStore, KeyStoreError, KeyUsage, ModeOfUse,
};
use hsm::lmk::Lmk;

const LMK_A: &str = "603DEB1015CA71BE2B73AEF0857D77811F352C073B6108D72D9810A30914DFF4";
const LMK_B: &str = "603DEB1015CA71BE2B73AEF0857D77811F352C073B6108D72D9810A30914DFF5";

fn lmk(hex: &str) -> Lmk {
    Lmk::from_hex(hex).unwrap()
}

fn header(alias: &str, algorithm: KeyAlgorithm, usage: KeyUsage, mode: ModeOfUse) -> KeyHeader {
    KeyHeader {
        alias: alias.to_owned(),
        algorithm,
        usage,
        mode,
        version: *b"01",
        exportability: Exportability::Exportable,
    }
}

#[test]
fn keys_persist_across_reopen_with_state_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (kcv_mac, kcv_sm2);
    {
        let mut store = KeyStore::open(dir.path(), lmk(LMK_A)).unwrap();
        kcv_mac = store
            .generate(header(
                "mac",
                KeyAlgorithm::Aes128,
                KeyUsage::M6,
                ModeOfUse::C,
            ))
            .unwrap()
            .kcv;
        kcv_sm2 = store
            .generate(header("sig", KeyAlgorithm::Sm2, KeyUsage::S0, ModeOfUse::S))
            .unwrap()
            .kcv;
        store
            .generate(header(
                "gone",
                KeyAlgorithm::Tdes2,
                KeyUsage::P0,
                ModeOfUse::B,
            ))
            .unwrap();
        store.set_state("sig", KeyState::Disabled).unwrap();
        store.set_state("gone", KeyState::Deleted).unwrap();
    }
    let store = KeyStore::open(dir.path(), lmk(LMK_A)).unwrap();
    assert_eq!(store.torn_tail_len(), 0);
    let mac = store.get("mac").unwrap();
    assert_eq!(mac.kcv, kcv_mac);
    assert_eq!(mac.header.usage, KeyUsage::M6);
    assert_eq!(mac.header.version, *b"01");
    assert_eq!(mac.state, KeyState::Enabled);
    assert!(mac.created_utc.ends_with('Z') && mac.created_utc.len() == 20);
    let sig = store.get("sig").unwrap();
    assert_eq!((sig.kcv, sig.state), (kcv_sm2, KeyState::Disabled));
    assert!(matches!(
        store.get("gone"),
        Err(KeyStoreError::KeyNotFound { .. })
    ));
    assert_eq!(store.list().len(), 2);
}

#[test]
fn components_xor_and_published_kcv() {
    // Two components whose XOR is TR-31:2018 A.7.2.2's key 3F419E1CB7079442AA37474C2EFBF8B8
    // (TDES KCV 57C409, also recomputed with python3 cryptography).
    let dir = tempfile::tempdir().unwrap();
    let mut store = KeyStore::open(dir.path(), lmk(LMK_A)).unwrap();
    let c1 = [0x11u8; 16];
    let c2: Vec<u8> = hex::decode("3F419E1CB7079442AA37474C2EFBF8B8")
        .unwrap()
        .iter()
        .map(|b| b ^ 0x11)
        .collect();
    let meta = store
        .import_components(
            header("pek", KeyAlgorithm::Tdes2, KeyUsage::P0, ModeOfUse::B),
            &[&c1, &c2],
            Some([0x57, 0xC4, 0x09]),
        )
        .unwrap();
    assert_eq!(meta.kcv_hex(), "57C409");
    let err = store
        .import_components(
            header("pek2", KeyAlgorithm::Tdes2, KeyUsage::P0, ModeOfUse::B),
            &[&c1, &c2],
            Some([0, 0, 0]),
        )
        .unwrap_err();
    assert!(matches!(err, KeyStoreError::KcvMismatch { .. }));
    let err = store
        .import_components(
            header("pek", KeyAlgorithm::Tdes2, KeyUsage::P0, ModeOfUse::B),
            &[&c1],
            None,
        )
        .unwrap_err();
    assert!(matches!(err, KeyStoreError::AliasExists { .. }));
    let err = store
        .import_components(
            header(
                "bad alias!",
                KeyAlgorithm::Tdes2,
                KeyUsage::P0,
                ModeOfUse::B,
            ),
            &[&c1],
            None,
        )
        .unwrap_err();
    assert!(matches!(err, KeyStoreError::InvalidAlias));
    let err = store
        .import_components(
            header("short", KeyAlgorithm::Aes256, KeyUsage::D0, ModeOfUse::B),
            &[&c1],
            None,
        )
        .unwrap_err();
    assert!(matches!(err, KeyStoreError::KeyLength { actual: 16, .. }));
}

#[test]
fn a_crash_at_any_byte_of_the_last_record_loses_only_that_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(JOURNAL_FILE);
    let kcv_a;
    let len_before_last;
    {
        let mut store = KeyStore::open(dir.path(), lmk(LMK_A)).unwrap();
        kcv_a = store
            .generate(header("a", KeyAlgorithm::Tdes2, KeyUsage::E0, ModeOfUse::X))
            .unwrap()
            .kcv;
        len_before_last = std::fs::metadata(&path).unwrap().len();
        store
            .generate(header("b", KeyAlgorithm::Sm4, KeyUsage::E0, ModeOfUse::X))
            .unwrap();
    }
    let full = std::fs::read(&path).unwrap();
    let full_len = u64::try_from(full.len()).unwrap();
    assert!(full_len > len_before_last + 40);
    for cut in len_before_last..full_len {
        let cut_usize = usize::try_from(cut).unwrap();
        std::fs::write(&path, &full[..cut_usize]).unwrap();
        let mut store =
            KeyStore::open(dir.path(), lmk(LMK_A)).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(store.get("a").unwrap().kcv, kcv_a, "cut at {cut}");
        assert!(store.get("b").is_err(), "cut at {cut}");
        assert_eq!(store.torn_tail_len(), cut - len_before_last);
        // The torn tail is gone from the file, and new records append cleanly after it.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), len_before_last);
        store
            .generate(header(
                "c",
                KeyAlgorithm::Aes128,
                KeyUsage::D0,
                ModeOfUse::B,
            ))
            .unwrap();
        drop(store);
        let store = KeyStore::open(dir.path(), lmk(LMK_A)).unwrap();
        assert!(store.get("c").is_ok() && store.get("a").is_ok());
    }
    // A zero-filled tail (a filesystem that grew the file before writing it) is a crash too.
    let mut zeroed = full[..usize::try_from(len_before_last).unwrap()].to_vec();
    zeroed.extend_from_slice(&[0u8; 64]);
    std::fs::write(&path, &zeroed).unwrap();
    let store = KeyStore::open(dir.path(), lmk(LMK_A)).unwrap();
    assert_eq!(store.torn_tail_len(), 64);
    // The whole file still opens with both keys.
    std::fs::write(&path, &full).unwrap();
    let store = KeyStore::open(dir.path(), lmk(LMK_A)).unwrap();
    assert!(store.get("b").is_ok());
}

#[test]
fn a_wrong_lmk_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = KeyStore::open(dir.path(), lmk(LMK_A)).unwrap();
        store
            .generate(header(
                "k",
                KeyAlgorithm::Aes256,
                KeyUsage::K1,
                ModeOfUse::B,
            ))
            .unwrap();
    }
    let err = KeyStore::open(dir.path(), lmk(LMK_B)).unwrap_err();
    let (a, b) = (lmk(LMK_A).kcv_hex(), lmk(LMK_B).kcv_hex());
    assert!(matches!(err, KeyStoreError::WrongLmk { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("wrong LMK: the key store was created under LMK KCV {a}, this LMK's KCV is {b}")
    );
    // Even with the header's KCV forged to the wrong LMK's, the records fail their GCM tag.
    let path = dir.path().join(JOURNAL_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..11].copy_from_slice(&lmk(LMK_B).kcv());
    std::fs::write(&path, &bytes).unwrap();
    let err = KeyStore::open(dir.path(), lmk(LMK_B)).unwrap_err();
    assert!(
        matches!(err, KeyStoreError::Tampered { seq: 0, offset: 16 }),
        "{err}"
    );
}

#[test]
fn an_altered_record_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = KeyStore::open(dir.path(), lmk(LMK_A)).unwrap();
        store
            .generate(header(
                "k1",
                KeyAlgorithm::Aes128,
                KeyUsage::D0,
                ModeOfUse::B,
            ))
            .unwrap();
        store
            .generate(header(
                "k2",
                KeyAlgorithm::Aes128,
                KeyUsage::D0,
                ModeOfUse::B,
            ))
            .unwrap();
    }
    let path = dir.path().join(JOURNAL_FILE);
    let original = std::fs::read(&path).unwrap();
    // Flip one byte inside the first record's ciphertext, then inside the second's.
    let first_len =
        usize::try_from(u32::from_be_bytes(original[16..20].try_into().unwrap())).unwrap();
    for (at, seq) in [(40usize, 0u64), (20 + first_len + 40, 1)] {
        let mut bytes = original.clone();
        bytes[at] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let err = KeyStore::open(dir.path(), lmk(LMK_A)).unwrap_err();
        assert!(
            matches!(err, KeyStoreError::Tampered { seq: s, .. } if s == seq),
            "{err}"
        );
    }
    // Swapping the two records (reordering) is refused too: the sequence number is bound.
    let mut swapped = original[..16].to_vec();
    swapped.extend_from_slice(&original[16 + 4 + first_len..]);
    swapped.extend_from_slice(&original[16..16 + 4 + first_len]);
    std::fs::write(&path, &swapped).unwrap();
    assert!(matches!(
        KeyStore::open(dir.path(), lmk(LMK_A)).unwrap_err(),
        KeyStoreError::Tampered { seq: 0, .. }
    ));
}

#[test]
fn debug_output_shows_no_key_material() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = KeyStore::open(dir.path(), lmk(LMK_A)).unwrap();
    let key = [0x5Au8; 16];
    let meta = store
        .import_components(
            header("d0", KeyAlgorithm::Aes128, KeyUsage::D0, ModeOfUse::B),
            &[&key],
            None,
        )
        .unwrap();
    let shown = format!("{store:?} {meta:?} {:?}", lmk(LMK_A));
    assert!(shown.contains("d0") && shown.contains(&format!("{:?}", meta.kcv)));
    for secret in [
        hex::encode(key),
        hex::encode_upper(key),
        LMK_A.to_owned(),
        LMK_A.to_lowercase(),
    ] {
        assert!(!shown.contains(&secret));
    }
    assert!(
        !shown.contains("90, 90, 90"),
        "decimal bytes of the key leaked: {shown}"
    );
    // A SecretKey shows only its length.
    let secret = hsm::keystore::SecretKey::new(zeroize::Zeroizing::new(key.to_vec()));
    assert_eq!(format!("{secret:?}"), "SecretKey(16 bytes, redacted)");
    // The journal never holds the clear key either.
    let journal = std::fs::read(dir.path().join(JOURNAL_FILE)).unwrap();
    assert!(!journal.windows(16).any(|w| w == key));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// Whatever follows a valid journal header, opening never panics: it replays, cuts a
        /// torn tail, or refuses with a typed error.
        #[test]
        fn opening_any_journal_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..300)) {
            let dir = tempfile::tempdir().unwrap();
            drop(KeyStore::open(dir.path(), lmk(LMK_A)).unwrap());
            let path = dir.path().join(JOURNAL_FILE);
            let mut bytes = std::fs::read(&path).unwrap();
            bytes.extend_from_slice(&tail);
            std::fs::write(&path, &bytes).unwrap();
            let _ = KeyStore::open(dir.path(), lmk(LMK_A));
        }

        /// A random prefix of a real journal (a crash mid-write) always opens.
        #[test]
        fn any_prefix_of_a_journal_opens(cut_per_mille in 0u64..1000) {
            let dir = tempfile::tempdir().unwrap();
            {
                let mut store = KeyStore::open(dir.path(), lmk(LMK_A)).unwrap();
                for i in 0..3 {
                    store.generate(header(&format!("k{i}"), KeyAlgorithm::Aes128, KeyUsage::D0, ModeOfUse::B)).unwrap();
                }
            }
            let path = dir.path().join(JOURNAL_FILE);
            let bytes = std::fs::read(&path).unwrap();
            let body = bytes.len() - 16;
            let cut = 16 + usize::try_from(u64::try_from(body).unwrap() * cut_per_mille / 1000).unwrap();
            std::fs::write(&path, &bytes[..cut]).unwrap();
            prop_assert!(KeyStore::open(dir.path(), lmk(LMK_A)).is_ok());
        }
    }
}
