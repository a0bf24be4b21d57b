//! Adversarial input against the HSM: malformed TR-31 blocks, PIN blocks with every bad nibble,
//! bad PANs, empty MAC data, hostile JSON over the ops API, the HTTP app and `hsm exec`.
//! Every refusal must be a typed error with a stable code, and no message, reply or audit line
//! may hold a test key, a PIN, a PIN block or a clear PAN.
//! Expected values: ISO 9564-1:2017 §9 (PIN block formats), ANSI X9.143-2022 §6 (TR-31 header),
//! RFC 4493 §4 example 1 (AES-CMAC of the empty message).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use hsm::keystore::{Exportability, KeyAlgorithm, KeyHeader, KeyUsage, ModeOfUse, SecretKey};
use hsm::lmk::Lmk;
use hsm::ops::api::execute;
use hsm::ops::{Hsm, HsmError};
use hsm::primitives::{BlockAlgorithm, KeyedCipher};
use hsm::tr31::{self, Tr31Header, Tr31Version};
use proptest::prelude::*;
use serde_json::{Value, json};
use zeroize::Zeroizing;

const LMK: &str = "A40E7C3A8D9B2C1E5F6A7B8C9D0E1F20314253647586970A1B2C3D4E5F607182";
const KBPK: &str = "7A3C5E7F9B1D2F4A6C8E0B2D4F6A8C0E1F3B5D7A9C2E4B6D8F0A1C3E5B7D9F2A";
const PEK: &str = "0123456789ABCDEF0123456789ABCDEF";
const PEK2: &str = "FEDCBA9876543210FEDCBA9876543210";
/// RFC 4493 §4 key.
const CMAC_KEY: &str = "2B7E151628AED2A6ABF7158809CF4F3C";
const WRAPPED: &str = "89ABCDEF0123456776543210FEDCBA98";
const PAN: &str = "6214830112345678";
const PIN: &str = "473921";
const SECRETS: [&str; 6] = [LMK, KBPK, PEK, PEK2, CMAC_KEY, WRAPPED];

struct Fixture {
    dir: tempfile::TempDir,
    hsm: Hsm,
}

fn header(alias: &str, algorithm: KeyAlgorithm, usage: KeyUsage, mode: ModeOfUse) -> KeyHeader {
    KeyHeader {
        alias: alias.into(),
        algorithm,
        usage,
        mode,
        version: *b"00",
        exportability: Exportability::Exportable,
    }
}

fn setup() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let mut hsm = Hsm::open(dir.path(), Lmk::from_hex(LMK).unwrap()).unwrap();
    for (alias, algorithm, usage, mode, key) in [
        (
            "kbpk",
            KeyAlgorithm::Aes256,
            KeyUsage::K1,
            ModeOfUse::B,
            KBPK,
        ),
        ("pek", KeyAlgorithm::Tdes2, KeyUsage::P0, ModeOfUse::B, PEK),
        (
            "pek2",
            KeyAlgorithm::Tdes2,
            KeyUsage::P0,
            ModeOfUse::B,
            PEK2,
        ),
        (
            "cmac",
            KeyAlgorithm::Aes128,
            KeyUsage::M6,
            ModeOfUse::C,
            CMAC_KEY,
        ),
    ] {
        hsm.import_key_components(
            "ceremony",
            header(alias, algorithm, usage, mode),
            &[&hex::decode(key).unwrap()],
            None,
        )
        .unwrap();
    }
    Fixture { dir, hsm }
}

fn audit(fx: &Fixture) -> String {
    std::fs::read_to_string(fx.dir.path().join(hsm::audit::AUDIT_FILE)).unwrap()
}

fn assert_clean(text: &str, extra: &[&str]) {
    for s in SECRETS.iter().chain(extra) {
        assert!(
            !text.to_uppercase().contains(&s.to_uppercase()),
            "{s} leaked in: {text}"
        );
    }
    assert!(!text.contains(PAN), "clear PAN leaked in: {text}");
}

fn run(fx: &mut Fixture, op: &str, body: Value) -> Result<Value, HsmError> {
    execute(&mut fx.hsm, "attacker", op, &body)
}

// ---------------------------------------------------------------------------------------------
// TR-31 (ANSI X9.143-2022 §6).

/// A valid version D block wrapping WRAPPED as a D0 AES key (16 + 2 + 30 bytes of data).
fn valid_block() -> String {
    let kbpk = SecretKey::new(Zeroizing::new(hex::decode(KBPK).unwrap()));
    let header = Tr31Header {
        version: Tr31Version::D,
        usage: *b"D0",
        algorithm: b'A',
        mode: b'B',
        key_version: *b"00",
        exportability: b'E',
        blocks: vec![],
    };
    let key = hex::decode(WRAPPED).unwrap();
    tr31::wrap_with_padding(KeyAlgorithm::Aes256, &kbpk, &header, &key, &[0x5A; 30]).unwrap()
}

fn import(fx: &mut Fixture, block: &str) -> Result<Value, HsmError> {
    run(
        fx,
        "ImportKey",
        json!({"kek_alias": "kbpk", "key_block": block, "alias": "imported"}),
    )
}

#[test]
fn tr31_bad_lengths_versions_and_optional_blocks_are_typed() {
    let mut fx = setup();
    let good = valid_block();
    assert!(import(&mut fx, &good).is_ok());
    run(&mut fx, "DeleteKey", json!({"alias": "imported"})).unwrap();
    let body = &good[16..];
    let with_header = |h: &str| {
        // Recompute the 4-digit length so that only the part under attack is wrong.
        let total = h.len() + body.len();
        format!("{}{:04}{}{}", &h[..1], total, &h[5..], body)
    };
    let cases: Vec<String> = vec![
        String::new(),
        "D".into(),
        good[..15].into(),
        good[..good.len() - 1].into(),
        format!("{good}0"),
        // Length field: non-digits, too large, zero.
        format!("DXXXX{}", &good[5..]),
        format!("D9999{}", &good[5..]),
        format!("D0000{}", &good[5..]),
        // Versions: lower case, unknown, control character, and a multi-byte UTF-8 first char.
        format!("d{}", &good[1..]),
        format!("Z{}", &good[1..]),
        format!("\n{}", &good[1..]),
        format!("é{}", &good[2..]),
        // Optional block count says 1 (or 99) but there is none; non-digit count.
        with_header("D0000D0AB00E0100"),
        with_header("D0000D0AB00E9900"),
        with_header("D0000D0AB00EX100"),
        // Reserved field not 00.
        with_header("D0000D0AB00E0001"),
        // One optional block: length 00 with length-of-length 00, 03, FF; length shorter than
        // its own ID and length; length past the end; non-hex length; non-printable data.
        with_header("D0000D0AB00E0100KS0000"),
        with_header("D0000D0AB00E0100KS0003FFFFFF"),
        with_header("D0000D0AB00E0100KS00FF"),
        with_header("D0000D0AB00E0100KS03AB"),
        with_header("D0000D0AB00E0100KSFF"),
        with_header("D0000D0AB00E0100KSZZ"),
        with_header("D0000D0AB00E0100KS0002FFFF"),
        with_header("D0000D0AB00E0100KS08\u{7f}\u{7f}\u{7f}\u{7f}"),
        // Body: non-hex characters, lower-case 'g', odd number of hex digits.
        format!("{}{}", &good[..good.len() - 2], "ZZ"),
    ];
    for (i, block) in cases.iter().enumerate() {
        let err = import(&mut fx, block).expect_err(&format!("case {i} accepted: {block:?}"));
        assert!(
            matches!(
                err.code(),
                "TR31_INVALID" | "TR31_MAC_MISMATCH" | "INVALID_REQUEST"
            ),
            "case {i}: {} {err}",
            err.code()
        );
        assert_eq!(err.http_status(), 400, "case {i}");
        assert_clean(&err.to_string(), &[]);
    }
    assert_clean(&audit(&fx), &[]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Any single-character change to a valid block is refused (or is a hex case change, which
    /// decodes to the same bytes), and never panics.
    #[test]
    fn tr31_one_changed_character_never_imports_another_key(
        at in any::<prop::sample::Index>(),
        c in prop::char::range(' ', '~'),
    ) {
        let mut fx = setup();
        let good = valid_block();
        let i = at.index(good.len());
        let mut bytes = good.clone().into_bytes();
        let original = bytes[i];
        bytes[i] = u8::try_from(u32::from(c)).unwrap();
        let block = String::from_utf8(bytes).unwrap();
        let same_hex = i >= 16 && original.eq_ignore_ascii_case(&bytes_of(c));
        match import(&mut fx, &block) {
            Ok(meta) => prop_assert!(block == good || same_hex, "accepted {block} → {meta}"),
            Err(e) => prop_assert_eq!(e.http_status(), 400),
        }
    }
}

fn bytes_of(c: char) -> u8 {
    u8::try_from(u32::from(c)).unwrap()
}

// ---------------------------------------------------------------------------------------------
// PIN blocks with every bad nibble (ISO 9564-1:2017 §9.3.2 format 0).

fn pan_block(pan: &str) -> [u8; 8] {
    // 0000 ‖ the 12 rightmost PAN digits excluding the check digit.
    let digits = &pan[pan.len() - 13..pan.len() - 1];
    let mut b = [0u8; 8];
    b[2..].copy_from_slice(&hex::decode(digits).unwrap());
    b
}

fn encrypt_field(field_hex: &str) -> String {
    let mut block = hex::decode(field_hex).unwrap();
    for (b, p) in block.iter_mut().zip(pan_block(PAN)) {
        *b ^= p;
    }
    let cipher = KeyedCipher::new(BlockAlgorithm::Tdes, &hex::decode(PEK).unwrap()).unwrap();
    cipher.encrypt_block(&mut block).unwrap();
    hex::encode_upper(block)
}

fn translate(fx: &mut Fixture, pin_block: &str, pan: &str) -> Result<Value, HsmError> {
    run(
        fx,
        "TranslatePinData",
        json!({"incoming_alias": "pek", "incoming_format": "ISO_0", "outgoing_alias": "pek2",
               "outgoing_format": "ISO_0", "pin_block": pin_block, "pan": pan}),
    )
}

#[test]
fn pin_block_with_every_bad_nibble_is_refused_without_the_pin() {
    let mut fx = setup();
    // The good block: 0 6 473921 FFFFFFFF.
    let good = "06473921FFFFFFFF";
    assert!(translate(&mut fx, &encrypt_field(good), PAN).is_ok());
    let mut fields = Vec::new();
    // Control nibble 1..F, length 0..3 and 13..15, a non-digit in each PIN position, a non-F
    // in each fill position.
    for v in 1..16u32 {
        fields.push(format!("{v:X}{}", &good[1..]));
    }
    for len in [0u32, 1, 2, 3, 13, 14, 15] {
        fields.push(format!("0{len:X}{}", &good[2..]));
    }
    for pos in 2..16 {
        let range: Vec<u32> = if pos < 8 {
            (10..16).collect()
        } else {
            (0..15).collect()
        };
        for v in range {
            let mut f: Vec<char> = good.chars().collect();
            f[pos] = char::from_digit(v, 16).unwrap().to_ascii_uppercase();
            fields.push(f.into_iter().collect());
        }
    }
    for field in &fields {
        let err = translate(&mut fx, &encrypt_field(field), PAN).expect_err(field);
        assert_eq!(err.code(), "CRYPTO_INPUT", "{field}: {err}");
        assert_clean(&err.to_string(), &[PIN, field]);
    }
    // Wrong block lengths: 0, 7, 9, 16 bytes.
    for len in [0usize, 7, 9, 16] {
        let err = translate(&mut fx, &"00".repeat(len), PAN).unwrap_err();
        assert_eq!(err.code(), "CRYPTO_INPUT", "{len}");
    }
    assert_clean(&audit(&fx), &[PIN]);
}

#[test]
fn pans_with_letters_too_short_or_too_long_are_typed() {
    let mut fx = setup();
    let block = encrypt_field("06473921FFFFFFFF");
    for pan in [
        "62148301123456A8",
        "621483011234",
        "62148301123456789012",
        "",
        " 6214830112345678",
        "6214830112345678\n",
        "６２１４８３０１１２３４５６７８",
    ] {
        let err = translate(&mut fx, &block, pan).unwrap_err();
        assert_eq!(err.code(), "CRYPTO_INPUT", "{pan:?}: {err}");
        assert!(err.to_string().contains("PAN"), "{err}");
        assert_clean(&err.to_string(), &[PIN, "123456"]);
    }
    assert_clean(&audit(&fx), &[PIN]);
}

// ---------------------------------------------------------------------------------------------
// MAC over 0 bytes.

#[test]
fn cmac_of_zero_bytes_is_the_rfc_4493_value() {
    let mut fx = setup();
    let reply = run(
        &mut fx,
        "GenerateMac",
        json!({"alias": "cmac", "message_data": ""}),
    )
    .unwrap();
    // RFC 4493 §4 Example 1: AES-CMAC(K, <empty>) = bb1d6929 e9593728 7fa37d12 9b756746.
    let mac = reply["mac"].as_str().unwrap();
    assert!(
        "BB1D6929E95937287FA37D129B756746".starts_with(mac) && mac.len() >= 8,
        "{mac}"
    );
    let ok = run(
        &mut fx,
        "VerifyMac",
        json!({"alias": "cmac", "message_data": "", "mac": mac}),
    )
    .unwrap();
    assert_eq!(ok["verified"], true);
    // An empty MAC to verify is a typed refusal, not a match.
    let err = run(
        &mut fx,
        "VerifyMac",
        json!({"alias": "cmac", "message_data": "", "mac": ""}),
    )
    .unwrap_err();
    assert!(
        matches!(
            err.code(),
            "CRYPTO_INPUT" | "VERIFICATION_FAILED" | "INVALID_REQUEST"
        ),
        "{err}"
    );
}

// ---------------------------------------------------------------------------------------------
// Hostile JSON through the ops API.

#[test]
fn wrong_types_missing_fields_and_odd_hex_are_typed() {
    let mut fx = setup();
    for (op, body, code) in [
        (
            "GenerateMac",
            json!({"alias": 5, "message_data": "00"}),
            "INVALID_REQUEST",
        ),
        (
            "GenerateMac",
            json!({"alias": "cmac", "message_data": 0}),
            "INVALID_REQUEST",
        ),
        (
            "GenerateMac",
            json!({"alias": "cmac", "message_data": ["00"]}),
            "INVALID_REQUEST",
        ),
        (
            "GenerateMac",
            json!({"alias": "cmac", "message_data": "0"}),
            "INVALID_HEX",
        ),
        (
            "GenerateMac",
            json!({"alias": "cmac", "message_data": "0g"}),
            "INVALID_HEX",
        ),
        (
            "GenerateMac",
            json!({"alias": "cmac", "message_data": "00", "padding": -1}),
            "INVALID_REQUEST",
        ),
        (
            "GenerateMac",
            json!({"alias": "cmac", "message_data": "00", "padding": 1.5}),
            "INVALID_REQUEST",
        ),
        ("GenerateMac", json!({"alias": "cmac"}), "INVALID_REQUEST"),
        ("GenerateMac", json!([1, 2, 3]), "INVALID_REQUEST"),
        ("GenerateMac", json!("cmac"), "INVALID_REQUEST"),
        (
            "GenerateMac",
            json!({"alias": "pek", "message_data": "00"}),
            "KEY_USAGE",
        ),
        (
            "TranslatePinData",
            json!({"incoming_alias": "cmac", "incoming_format": "ISO_0",
            "outgoing_alias": "pek2", "outgoing_format": "ISO_0",
            "pin_block": "0011223344556677", "pan": PAN}),
            "KEY_USAGE",
        ),
        (
            "TranslatePinData",
            json!({"incoming_alias": "pek", "incoming_format": "ISO_2",
            "outgoing_alias": "pek2", "outgoing_format": "ISO_0",
            "pin_block": "0011223344556677", "pan": PAN}),
            "INVALID_REQUEST",
        ),
        (
            "ImportKeyComponents",
            json!({"alias": "x", "algorithm": "AES_128", "usage": "M6",
            "components": []}),
            "INVALID_REQUEST",
        ),
        (
            "ImportKeyComponents",
            json!({"alias": "x", "algorithm": "AES_128", "usage": "M6",
            "components": ["00", "0000"]}),
            "INVALID_KEY_MATERIAL",
        ),
        (
            "ImportKeyComponents",
            json!({"alias": "x", "algorithm": "AES_128", "usage": "M6",
            "components": [CMAC_KEY], "expected_kcv": "ZZZZZZ"}),
            "INVALID_HEX",
        ),
        (
            "CreateKey",
            json!({"alias": "a".repeat(65), "algorithm": "AES_128", "usage": "M6"}),
            "INVALID_ALIAS",
        ),
        (
            "CreateKey",
            json!({"alias": "a b", "algorithm": "AES_128", "usage": "M6"}),
            "INVALID_ALIAS",
        ),
        (
            "CreateKey",
            json!({"alias": "ok", "algorithm": "AES_128", "usage": "M6", "key_version": "é"}),
            "INVALID_REQUEST",
        ),
        (
            "CreateKey",
            json!({"alias": "ok", "algorithm": "AES_128", "usage": "M6", "mode_of_use": "é"}),
            "INVALID_REQUEST",
        ),
    ] {
        let err = run(&mut fx, op, body.clone()).expect_err(&body.to_string());
        assert_eq!(err.code(), code, "{op} {body}: {err}");
        assert_clean(&err.to_string(), &[]);
    }
    assert_clean(&audit(&fx), &[]);
}

#[test]
fn unknown_alias_error_does_not_echo_arbitrary_text() {
    let mut fx = setup();
    // A caller who pastes a key (or any long text) into the alias field: the refusal names the
    // problem; the store never holds such an alias, so repeating it serves no one.
    let long = "X".repeat(100_000);
    for alias in [PEK2, long.as_str(), "line1\nline2", "\u{202e}evil"] {
        let err = run(
            &mut fx,
            "GenerateMac",
            json!({"alias": alias, "message_data": "00"}),
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(message.len() < 200, "{} bytes", message.len());
        assert!(!message.contains('\n'));
        assert!(!message.contains('\u{202e}'));
    }
    let log = audit(&fx);
    assert!(
        log.lines().all(|l| l.len() < 1_000),
        "an audit line echoes the alias"
    );
}

// ---------------------------------------------------------------------------------------------
// The HTTP app and `hsm exec`.

#[cfg(feature = "server")]
mod http {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use hsm::server::{AppState, Callers, REQUEST_BODY_LEN_MAX, app};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    const TOKEN: &str = "attacker-token-0123456789";

    async fn call(
        state: &AppState,
        path: &str,
        auth: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut req = Request::post(path).header("content-type", "application/json");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = app(state.clone())
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    fn state() -> (Fixture, AppState) {
        let fx = setup();
        let hsm = Hsm::open(fx.dir.path(), Lmk::from_hex(LMK).unwrap()).unwrap();
        let callers = Callers::parse(&format!("attacker:{TOKEN}")).unwrap();
        (fx, AppState::new(hsm, callers))
    }

    #[tokio::test]
    async fn missing_or_malformed_auth_is_401() {
        let (_fx, state) = state();
        for auth in [
            None,
            Some(String::new()),
            Some("Bearer".into()),
            Some("Bearer ".into()),
            Some(format!("bearer {TOKEN}")),
            Some(format!("Basic {TOKEN}")),
            Some(format!("Bearer  {TOKEN}")),
            Some(format!("Bearer {TOKEN} ")),
            Some(format!("Bearer {}", &TOKEN[..TOKEN.len() - 1])),
        ] {
            let (status, body) = call(&state, "/v1/Ping", auth.as_deref(), b"{}".to_vec()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{auth:?}");
            assert_eq!(body["code"], "UNAUTHORIZED");
        }
    }

    #[tokio::test]
    async fn huge_nested_and_non_json_bodies_are_4xx() {
        let (fx, state) = state();
        let auth = format!("Bearer {TOKEN}");
        // Past the body limit.
        let huge = vec![b' '; REQUEST_BODY_LEN_MAX + 1];
        let (status, _) = call(&state, "/v1/Ping", Some(&auth), huge).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        // Deep nesting within the limit: serde_json's recursion limit, not a stack overflow.
        let deep = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000)).into_bytes();
        let (status, body) = call(&state, "/v1/Ping", Some(&auth), deep).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("BAD_JSON"))
        );
        let deep_obj = format!("{}1{}", "{\"a\":".repeat(20_000), "}".repeat(20_000)).into_bytes();
        let (status, _) = call(&state, "/v1/Ping", Some(&auth), deep_obj).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        // Not UTF-8, not JSON, a JSON array, a JSON string.
        for body in [
            vec![0xFF, 0xFE, 0x00],
            b"{\"alias\":".to_vec(),
            b"[1]".to_vec(),
            b"\"x\"".to_vec(),
        ] {
            let (status, reply) = call(&state, "/v1/GenerateMac", Some(&auth), body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
        }
        // A PAN in a field that is not hex: the reply names the field only.
        let body = json!({"alias": "cmac", "message_data": format!("{PAN}X")}).to_string();
        let (status, reply) = call(&state, "/v1/GenerateMac", Some(&auth), body.into_bytes()).await;
        assert_eq!(
            (status, reply["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("INVALID_HEX"))
        );
        assert_clean(&reply.to_string(), &[]);
        // Operation names with odd characters.
        let (status, _) = call(&state, "/v1/%00%0A", Some(&auth), b"{}".to_vec()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_clean(&audit(&fx), &[]);
    }

    fn exec(dir: &std::path::Path, stdin: &[u8]) -> (Option<i32>, Vec<u8>) {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let mut child = Command::new(env!("CARGO_BIN_EXE_hsm"))
            .env("HSM_LMK_HEX", LMK)
            .env_remove("HSM_CALLERS")
            .args(["exec", "--data"])
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The child may stop reading early; a broken pipe is fine.
        let _ = child.stdin.take().unwrap().write_all(stdin);
        let out = child.wait_with_output().unwrap();
        let mut all = out.stdout;
        all.extend(out.stderr);
        (out.status.code(), all)
    }

    #[test]
    fn exec_with_garbage_on_stdin_fails_cleanly() {
        let fx = setup();
        for stdin in [
            Vec::new(),
            b"\x00\xFF\xFE garbage".to_vec(),
            b"{\"operation\": 5}".to_vec(),
            b"{\"operation\": \"GenerateMac\", \"alias\": \"cmac\", \"message_data\": \"0\"}"
                .to_vec(),
            format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)).into_bytes(),
            vec![b'{'; 300 * 1024],
        ] {
            let (code, output) = exec(fx.dir.path(), &stdin);
            // A refusal: a non-zero exit that is not a panic (101) or a signal (None).
            assert!(
                matches!(code, Some(c) if c != 0 && c != 101),
                "exit {code:?}: {}",
                String::from_utf8_lossy(&output)
            );
            assert_clean(&String::from_utf8_lossy(&output), &[]);
        }
        // And a good request still works.
        let (code, output) = exec(
            fx.dir.path(),
            br#"{"operation": "GenerateMac", "alias": "cmac", "message_data": ""}"#,
        );
        assert_eq!(code, Some(0), "{}", String::from_utf8_lossy(&output));
    }
}
