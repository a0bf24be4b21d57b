//! Loading of the published test vectors in fixtures/vectors/ (each file names its sources).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

/// Parses fixtures/vectors/<name> as TOML.
pub fn load(name: &str) -> toml::Table {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/vectors")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    text.parse().unwrap()
}

/// A string field of a table.
pub fn s<'a>(t: &'a toml::Table, key: &str) -> &'a str {
    t.get(key)
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("missing field {key}"))
}

/// A hex field of a table, decoded.
pub fn h(t: &toml::Table, key: &str) -> Vec<u8> {
    hex::decode(s(t, key)).unwrap()
}

/// A hex field decoded into a fixed-size array.
pub fn a<const N: usize>(t: &toml::Table, key: &str) -> [u8; N] {
    h(t, key).try_into().unwrap()
}

/// The array of tables `key`.
pub fn list<'a>(t: &'a toml::Table, key: &str) -> Vec<&'a toml::Table> {
    t[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_table().unwrap())
        .collect()
}

/// The table `key`.
pub fn table<'a>(t: &'a toml::Table, key: &str) -> &'a toml::Table {
    t[key].as_table().unwrap()
}

/// First bytes of 3DES_K(0^8), the TDES key check value (ANSI X9.24), computed with the crate's
/// single-block primitive.
pub fn tdes_kcv(key: &[u8]) -> [u8; 8] {
    hsm::primitives::tdes_encrypt_block(key, &[0u8; 8]).unwrap()
}
