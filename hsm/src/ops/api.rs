//! The JSON face of the operations, shared by the HTTP server and `hsm exec`: an operation
//! name (e.g. `GenerateMac`) and a JSON object with snake_case fields, binary values as hex
//! (either case); replies are JSON objects with upper-case hex. See [`OPERATIONS`].

use serde_json::{Map, Value, json};

use super::{
    ArpcRequest, ArqcRequest, CipherMode, Hsm, HsmError, MajorKeyDerivation, PinVerification,
    SessionKeyDerivation,
};
use crate::keystore::{
    Exportability, KeyAlgorithm, KeyHeader, KeyMetadata, KeyState, KeyUsage, ModeOfUse,
};
use crate::mac::Padding;
use crate::pin::PinBlockFormat;
use crate::tr31::Tr31Version;

/// Every operation name the API accepts.
pub const OPERATIONS: [&str; 25] = [
    "CreateKey",
    "ImportKeyComponents",
    "GenerateKey",
    "GetKey",
    "ListKeys",
    "DeleteKey",
    "DisableKey",
    "EnableKey",
    "ImportKey",
    "ExportKey",
    "GenerateMac",
    "VerifyMac",
    "EncryptData",
    "DecryptData",
    "TranslatePinData",
    "VerifyPinData",
    "VerifyAuthRequestCryptogram",
    "GenerateCardAuthCryptogram",
    "VerifyCardInternalAuth",
    "SignData",
    "VerifySignature",
    "GetPublicKey",
    "GetLmkKcv",
    "Ping",
    "ListOperations",
];

/// Longest hex field accepted, in characters (64 KiB of data).
pub const HEX_FIELD_LEN_MAX: usize = 128 * 1024;
/// Default SM2 distinguishing ID (GM/T 0009-2012 §10).
pub const SM2_DEFAULT_ID: &str = "1234567812345678";

fn invalid(field: &str, reason: impl Into<String>) -> HsmError {
    HsmError::InvalidRequest {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// A request body as a field map.
struct Body<'a>(&'a Map<String, Value>);

impl Body<'_> {
    fn opt_str(&self, field: &str) -> Result<Option<&str>, HsmError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(invalid(field, "must be a string")),
        }
    }

    fn str(&self, field: &str) -> Result<&str, HsmError> {
        self.opt_str(field)?
            .ok_or_else(|| invalid(field, "is required"))
    }

    fn opt_hex(&self, field: &str) -> Result<Option<Vec<u8>>, HsmError> {
        let Some(text) = self.opt_str(field)? else {
            return Ok(None);
        };
        if text.len() > HEX_FIELD_LEN_MAX {
            return Err(invalid(
                field,
                format!("longer than {HEX_FIELD_LEN_MAX} characters"),
            ));
        }
        crate::error::decode_hex(text)
            .map(Some)
            .map_err(|e| HsmError::InvalidHex {
                field: field.to_owned(),
                reason: e.to_string(),
            })
    }

    fn hex(&self, field: &str) -> Result<Vec<u8>, HsmError> {
        self.opt_hex(field)?
            .ok_or_else(|| invalid(field, "is required"))
    }

    fn hex_n<const N: usize>(&self, field: &str) -> Result<[u8; N], HsmError> {
        let bytes = self.hex(field)?;
        <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| {
            invalid(
                field,
                format!(
                    "must be {N} bytes ({} hex characters), got {} bytes",
                    2 * N,
                    bytes.len()
                ),
            )
        })
    }

    fn opt_u64(&self, field: &str) -> Result<Option<u64>, HsmError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| invalid(field, "must be a non-negative integer")),
        }
    }
}

fn padding(body: &Body<'_>) -> Result<Padding, HsmError> {
    match body.opt_u64("padding")? {
        None | Some(1) => Ok(Padding::Method1),
        Some(2) => Ok(Padding::Method2),
        Some(3) => Ok(Padding::Method3),
        Some(_) => Err(invalid(
            "padding",
            "must be 1, 2 or 3 (ISO 9797-1 padding method)",
        )),
    }
}

fn pin_format(body: &Body<'_>, field: &str) -> Result<PinBlockFormat, HsmError> {
    match body.str(field)? {
        "ISO_0" => Ok(PinBlockFormat::Iso0),
        "ISO_1" => Ok(PinBlockFormat::Iso1),
        "ISO_3" => Ok(PinBlockFormat::Iso3),
        "ISO_4" => Ok(PinBlockFormat::Iso4),
        _ => Err(invalid(field, "must be ISO_0, ISO_1, ISO_3 or ISO_4")),
    }
}

fn kcv_field(body: &Body<'_>, field: &str) -> Result<Option<[u8; 3]>, HsmError> {
    if body.opt_str(field)?.is_none() {
        return Ok(None);
    }
    body.hex_n::<3>(field).map(Some)
}

/// The JSON of a key's metadata.
#[must_use]
pub fn metadata_json(meta: &KeyMetadata) -> Value {
    let h = &meta.header;
    json!({
        "alias": h.alias,
        "algorithm": h.algorithm.name(),
        "usage": h.usage.code(),
        "mode_of_use": char::from(h.mode.code()).to_string(),
        "key_version": h.version_str(),
        "exportability": char::from(h.exportability.code()).to_string(),
        "kcv": meta.kcv_hex(),
        "created_utc": meta.created_utc,
        "state": meta.state.name(),
    })
}

fn key_header(body: &Body<'_>) -> Result<KeyHeader, HsmError> {
    let one = |field: &str, default: &str| -> Result<u8, HsmError> {
        let text = body.opt_str(field)?.unwrap_or(default);
        match text.as_bytes() {
            [b] => Ok(*b),
            _ => Err(invalid(field, "must be one character")),
        }
    };
    let version = body.opt_str("key_version")?.unwrap_or("00");
    Ok(KeyHeader {
        alias: body.str("alias")?.to_owned(),
        algorithm: KeyAlgorithm::from_name(body.str("algorithm")?).ok_or_else(|| {
            invalid("algorithm", "must be TDES_2KEY, TDES_3KEY, AES_128, AES_256, SM4, HMAC_SHA256, SM2 or ECC_NIST_P256")
        })?,
        usage: KeyUsage::from_code(body.str("usage")?)
            .ok_or_else(|| invalid("usage", "not a supported TR-31 key usage"))?,
        mode: ModeOfUse::from_code(one("mode_of_use", "N")?)
            .ok_or_else(|| invalid("mode_of_use", "not a TR-31 mode of use"))?,
        version: match version.as_bytes() {
            [a, b] if a.is_ascii_alphanumeric() && b.is_ascii_alphanumeric() => [*a, *b],
            _ => return Err(invalid("key_version", "must be two alphanumerics")),
        },
        exportability: Exportability::from_code(one("exportability", "N")?)
            .ok_or_else(|| invalid("exportability", "must be E, N or S"))?,
    })
}

fn verified() -> Value {
    json!({"verified": true})
}

/// Runs `operation` with the JSON `body` for `caller`; returns the JSON reply.
///
/// Errors: [`HsmError::UnknownOperation`], [`HsmError::InvalidRequest`] (missing or malformed
/// field, body not an object), [`HsmError::InvalidHex`], and the operation's own errors.
pub fn execute(
    hsm: &mut Hsm,
    caller: &str,
    operation: &str,
    body: &Value,
) -> Result<Value, HsmError> {
    let before = hsm.audited();
    let result = dispatch(hsm, caller, operation, body);
    if let Err(e) = &result
        && hsm.audited() == before
    {
        hsm.audit_refused(caller, operation, e)?;
    }
    result
}

fn dispatch(hsm: &mut Hsm, caller: &str, operation: &str, body: &Value) -> Result<Value, HsmError> {
    let empty = Map::new();
    let map = match body {
        Value::Object(m) => m,
        Value::Null => &empty,
        _ => return Err(invalid("body", "must be a JSON object")),
    };
    let b = Body(map);
    let alias = || b.str("alias");
    match operation {
        "CreateKey" | "GenerateKey" => Ok(metadata_json(&hsm.create_key(caller, key_header(&b)?)?)),
        "ImportKeyComponents" => {
            let list = match map.get("components") {
                Some(Value::Array(items)) if (1..=3).contains(&items.len()) => items,
                _ => {
                    return Err(invalid(
                        "components",
                        "must be an array of 1 to 3 hex strings",
                    ));
                }
            };
            let mut components = Vec::with_capacity(list.len());
            for (i, item) in list.iter().enumerate() {
                let field = format!("components[{i}]");
                let text = item
                    .as_str()
                    .ok_or_else(|| invalid(&field, "must be a hex string"))?;
                let bytes = crate::error::decode_hex(text).map_err(|e| HsmError::InvalidHex {
                    field: field.clone(),
                    reason: e.to_string(),
                })?;
                components.push(zeroize::Zeroizing::new(bytes));
            }
            let refs: Vec<&[u8]> = components.iter().map(|c| c.as_slice()).collect();
            let meta = hsm.import_key_components(
                caller,
                key_header(&b)?,
                &refs,
                kcv_field(&b, "expected_kcv")?,
            )?;
            Ok(metadata_json(&meta))
        }
        "GetKey" => Ok(metadata_json(&hsm.get_key(caller, alias()?)?)),
        "ListKeys" => {
            let keys: Vec<Value> = hsm.list_keys(caller)?.iter().map(metadata_json).collect();
            Ok(json!({ "keys": keys }))
        }
        "DeleteKey" => Ok(metadata_json(&hsm.set_key_state(
            caller,
            alias()?,
            KeyState::Deleted,
        )?)),
        "DisableKey" => Ok(metadata_json(&hsm.set_key_state(
            caller,
            alias()?,
            KeyState::Disabled,
        )?)),
        "EnableKey" => Ok(metadata_json(&hsm.set_key_state(
            caller,
            alias()?,
            KeyState::Enabled,
        )?)),
        "ImportKey" => {
            let meta = hsm.import_key(
                caller,
                b.str("kek_alias")?,
                b.str("key_block")?,
                alias()?,
                kcv_field(&b, "expected_kcv")?,
            )?;
            Ok(metadata_json(&meta))
        }
        "ExportKey" => {
            let version = match b.opt_str("version")?.unwrap_or("D") {
                "B" => Tr31Version::B,
                "C" => Tr31Version::C,
                "D" => Tr31Version::D,
                _ => return Err(invalid("version", "must be B, C or D")),
            };
            let (block, meta) = hsm.export_key(caller, b.str("kek_alias")?, alias()?, version)?;
            Ok(json!({"key_block": block, "kcv": meta.kcv_hex()}))
        }
        "GenerateMac" => {
            let (mac, meta) =
                hsm.generate_mac(caller, alias()?, &b.hex("message_data")?, padding(&b)?)?;
            Ok(json!({"mac": hex::encode_upper(mac), "kcv": meta.kcv_hex()}))
        }
        "VerifyMac" => {
            let meta = hsm.verify_mac(
                caller,
                alias()?,
                &b.hex("message_data")?,
                &b.hex("mac")?,
                padding(&b)?,
            )?;
            Ok(json!({"verified": true, "kcv": meta.kcv_hex()}))
        }
        "EncryptData" | "DecryptData" => {
            let mode = match b.opt_str("mode")?.unwrap_or("ECB") {
                "ECB" => CipherMode::Ecb,
                "CBC" => CipherMode::Cbc { iv: b.hex("iv")? },
                _ => return Err(invalid("mode", "must be ECB or CBC")),
            };
            let data = b.hex("data")?;
            let out = if operation == "EncryptData" {
                hsm.encrypt_data(caller, alias()?, &mode, &data)?
            } else {
                hsm.decrypt_data(caller, alias()?, &mode, &data)?
            };
            Ok(json!({"data": hex::encode_upper(out)}))
        }
        "TranslatePinData" => {
            let out = hsm.translate_pin_data(
                caller,
                b.str("incoming_alias")?,
                pin_format(&b, "incoming_format")?,
                b.str("outgoing_alias")?,
                pin_format(&b, "outgoing_format")?,
                &b.hex("pin_block")?,
                b.opt_str("pan")?,
            )?;
            Ok(json!({"pin_block": hex::encode_upper(out)}))
        }
        "VerifyPinData" => {
            let method = match b.str("method")? {
                "IBM3624" => PinVerification::Ibm3624 {
                    decimalization_table: b.str("decimalization_table")?.to_owned(),
                    validation_data: b.str("validation_data")?.to_owned(),
                    offset: b.str("offset")?.to_owned(),
                },
                "VISA_PVV" => PinVerification::VisaPvv {
                    pvki: b
                        .opt_u64("pvki")?
                        .and_then(|v| u8::try_from(v).ok())
                        .filter(|v| *v <= 9)
                        .ok_or_else(|| invalid("pvki", "must be 0-9"))?,
                    pvv: b.str("pvv")?.to_owned(),
                },
                _ => return Err(invalid("method", "must be IBM3624 or VISA_PVV")),
            };
            hsm.verify_pin_data(
                caller,
                b.str("pek_alias")?,
                pin_format(&b, "pin_block_format")?,
                &b.hex("pin_block")?,
                b.str("pan")?,
                b.str("pvk_alias")?,
                &method,
            )?;
            Ok(verified())
        }
        "VerifyAuthRequestCryptogram" => {
            let req = arqc_request(&b)?;
            let arpc = hsm.verify_auth_request_cryptogram(caller, &req)?;
            Ok(match arpc {
                Some(a) => json!({"verified": true, "arpc": hex::encode_upper(a)}),
                None => verified(),
            })
        }
        "GenerateCardAuthCryptogram" => {
            let c = hsm.generate_card_auth_cryptogram(
                caller,
                alias()?,
                &b.hex("card_id")?,
                b.hex_n::<8>("challenge")?,
            )?;
            Ok(json!({"cryptogram": hex::encode_upper(c)}))
        }
        "VerifyCardInternalAuth" => {
            hsm.verify_card_internal_auth(
                caller,
                alias()?,
                &b.hex("card_id")?,
                b.hex_n::<16>("auth_data")?,
                b.hex_n::<16>("card_response")?,
            )?;
            Ok(verified())
        }
        "SignData" => {
            let id = b.opt_str("sm2_id")?.unwrap_or(SM2_DEFAULT_ID);
            let sig = hsm.sign_data(caller, alias()?, &b.hex("message")?, id)?;
            Ok(json!({"signature": hex::encode_upper(sig)}))
        }
        "VerifySignature" => {
            let id = b.opt_str("sm2_id")?.unwrap_or(SM2_DEFAULT_ID);
            hsm.verify_signature(
                caller,
                alias()?,
                &b.hex("message")?,
                &b.hex("signature")?,
                id,
            )?;
            Ok(verified())
        }
        "GetPublicKey" => {
            Ok(json!({"public_key": hex::encode_upper(hsm.get_public_key(caller, alias()?)?)}))
        }
        "GetLmkKcv" => Ok(json!({"lmk_kcv": hsm.lmk_kcv_hex()})),
        "Ping" => Ok(json!({"ok": true})),
        "ListOperations" => Ok(json!({"operations": OPERATIONS})),
        other => Err(HsmError::UnknownOperation {
            name: other.chars().take(64).collect(),
        }),
    }
}

fn arqc_request(b: &Body<'_>) -> Result<ArqcRequest, HsmError> {
    let major = match b.opt_str("major_key_derivation")?.unwrap_or("EMV_OPTION_A") {
        "EMV_OPTION_A" => MajorKeyDerivation::EmvOptionA,
        "PBOC_SM4" => MajorKeyDerivation::PbocSm4,
        _ => {
            return Err(invalid(
                "major_key_derivation",
                "must be EMV_OPTION_A or PBOC_SM4",
            ));
        }
    };
    let session = match b.opt_str("session_key_derivation")?.unwrap_or("EMV_COMMON") {
        "EMV_COMMON" => SessionKeyDerivation::EmvCommon {
            un: b.hex_n::<4>("un")?,
        },
        "PBOC" => SessionKeyDerivation::Pboc,
        _ => {
            return Err(invalid(
                "session_key_derivation",
                "must be EMV_COMMON or PBOC",
            ));
        }
    };
    let arpc = match b.opt_u64("arpc_method")? {
        None => None,
        Some(1) => Some(ArpcRequest::Method1 {
            arc: b.hex_n::<2>("arc")?,
        }),
        Some(2) => Some(ArpcRequest::Method2 {
            csu: b.hex_n::<4>("csu")?,
            proprietary_auth_data: b.opt_hex("proprietary_auth_data")?.unwrap_or_default(),
        }),
        Some(_) => return Err(invalid("arpc_method", "must be 1 or 2")),
    };
    let arpc_with_card_master_key = match b.opt_str("arpc_key")?.unwrap_or("SESSION") {
        "SESSION" => false,
        "CARD_MASTER" => true,
        _ => return Err(invalid("arpc_key", "must be SESSION or CARD_MASTER")),
    };
    Ok(ArqcRequest {
        alias: b.str("alias")?.to_owned(),
        pan: b.str("pan")?.to_owned(),
        psn: b.hex_n::<1>("psn")?[0],
        atc: b.hex_n::<2>("atc")?,
        transaction_data: b.hex("transaction_data")?,
        arqc: b.hex_n::<8>("arqc")?,
        major_key_derivation: major,
        session_key_derivation: session,
        arpc,
        arpc_with_card_master_key,
    })
}
