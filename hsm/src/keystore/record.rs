//! Journal record contents (JSON inside the LMK seal): a key put, or a state change. The
//! key material in a put is itself sealed under the LMK with the key header as additional data.

use serde_json::{Value, json};

use super::{Exportability, KeyAlgorithm, KeyHeader, KeyMetadata, KeyState, KeyUsage, ModeOfUse};

/// One change to the store.
pub(crate) enum Record {
    /// A key added (or re-added over a deleted alias).
    Put {
        /// Its metadata.
        meta: KeyMetadata,
        /// Its material sealed under the LMK (AAD = header).
        sealed: Vec<u8>,
    },
    /// A key's state changed.
    State {
        /// The key.
        alias: String,
        /// The new state.
        state: KeyState,
    },
}

fn text<'a>(v: &'a Value, field: &str) -> Result<&'a str, String> {
    v.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing text field '{field}'"))
}

fn one_byte(s: &str, field: &str) -> Result<u8, String> {
    match s.as_bytes() {
        [b] => Ok(*b),
        _ => Err(format!("field '{field}' must be one character")),
    }
}

impl Record {
    /// Serialises the record (JSON, UTF-8).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let v = match self {
            Self::Put { meta, sealed } => {
                let h = &meta.header;
                json!({
                    "op": "put",
                    "alias": h.alias,
                    "algorithm": h.algorithm.name(),
                    "usage": h.usage.code(),
                    "mode": char::from(h.mode.code()).to_string(),
                    "version": h.version_str(),
                    "exportability": char::from(h.exportability.code()).to_string(),
                    "kcv": meta.kcv_hex(),
                    "created_utc": meta.created_utc,
                    "state": meta.state.name(),
                    "sealed_key": hex::encode_upper(sealed),
                })
            }
            Self::State { alias, state } => json!({
                "op": "state",
                "alias": alias,
                "state": state.name(),
            }),
        };
        v.to_string().into_bytes()
    }

    /// Parses a record; the error names the field at fault.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, String> {
        let v: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
        let state = |v: &Value| {
            KeyState::from_name(text(v, "state")?).ok_or_else(|| String::from("unknown state"))
        };
        match text(&v, "op")? {
            "put" => {
                let version = text(&v, "version")?.as_bytes();
                let header = KeyHeader {
                    alias: text(&v, "alias")?.to_owned(),
                    algorithm: KeyAlgorithm::from_name(text(&v, "algorithm")?)
                        .ok_or_else(|| String::from("unknown algorithm"))?,
                    usage: KeyUsage::from_code(text(&v, "usage")?)
                        .ok_or_else(|| String::from("unknown usage"))?,
                    mode: ModeOfUse::from_code(one_byte(text(&v, "mode")?, "mode")?)
                        .ok_or_else(|| String::from("unknown mode of use"))?,
                    version: match version {
                        [a, b] => [*a, *b],
                        _ => return Err(String::from("version must be two characters")),
                    },
                    exportability: Exportability::from_code(one_byte(
                        text(&v, "exportability")?,
                        "exportability",
                    )?)
                    .ok_or_else(|| String::from("unknown exportability"))?,
                };
                let mut kcv = [0u8; 3];
                hex::decode_to_slice(text(&v, "kcv")?, &mut kcv)
                    .map_err(|_| String::from("bad kcv"))?;
                let sealed = hex::decode(text(&v, "sealed_key")?)
                    .map_err(|_| String::from("bad sealed_key"))?;
                Ok(Self::Put {
                    meta: KeyMetadata {
                        header,
                        kcv,
                        created_utc: text(&v, "created_utc")?.to_owned(),
                        state: state(&v)?,
                    },
                    sealed,
                })
            }
            "state" => Ok(Self::State {
                alias: text(&v, "alias")?.to_owned(),
                state: state(&v)?,
            }),
            other => Err(format!("unknown op '{other}'")),
        }
    }
}
