//! SM2/SM3/SM4 against published vectors (fixtures/vectors/sm.toml: GB/T 32907, GB/T 32905,
//! GM/T 0003.5 Annex A) and the contract's SM4 diversification against an independent OpenSSL
//! computation (fixtures/vectors/independent.toml). ECDSA P-256 round trip via ring.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{a, h, list, load, s, table};
use hsm::error::Error;
use hsm::sm::*;

#[test]
fn sm4_gbt32907_example_1() {
    let v = load("sm.toml");
    let t = table(&v, "sm4");
    let key = a::<16>(t, "key");
    let c = sm4_encrypt_ecb(&key, &h(t, "plaintext")).unwrap();
    assert_eq!(c, h(t, "ciphertext"), "{}", s(t, "source"));
    assert_eq!(sm4_decrypt_ecb(&key, &c).unwrap(), h(t, "plaintext"));
}

/// GB/T 32907-2016 Annex A example 2: one million encryptions. ~6 M blocks/s in release but far
/// slower unoptimised, so it runs only in optimised builds (`cargo test --release`).
#[cfg(not(debug_assertions))]
#[test]
fn sm4_gbt32907_example_2_million_iterations() {
    let v = load("sm.toml");
    let t = table(&v, "sm4");
    let key = a::<16>(t, "key");
    let mut block = a::<16>(t, "plaintext");
    for _ in 0..1_000_000 {
        block = hsm::primitives::sm4_encrypt_block(&key, &block);
    }
    assert_eq!(block.to_vec(), h(t, "ciphertext_1000000"));
}

#[test]
fn sm4_cbc_round_trip_and_bad_lengths() {
    let key = [9u8; 16];
    let iv = [3u8; 16];
    let data = [0x5Au8; 48];
    let c = sm4_encrypt_cbc(&key, &iv, &data).unwrap();
    // CBC by hand: first block = SM4(P1 ^ IV) (GB/T 17964 CBC; ECB primitive checked above).
    let mut first = [0u8; 16];
    first
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = data[i] ^ iv[i]);
    assert_eq!(c[..16], sm4_encrypt_ecb(&key, &first).unwrap()[..]);
    assert_eq!(sm4_decrypt_cbc(&key, &iv, &c).unwrap(), data);
    assert!(matches!(
        sm4_encrypt_ecb(&key, &[0; 17]),
        Err(Error::DataLength { actual: 17, .. })
    ));
    assert!(matches!(
        sm4_decrypt_ecb(&key, &[0; 8]),
        Err(Error::DataLength { .. })
    ));
}

#[test]
fn sm3_gbt32905_examples() {
    let v = load("sm.toml");
    for case in list(&v, "sm3") {
        let d = sm3_digest(s(case, "message_ascii").as_bytes());
        assert_eq!(d.to_vec(), h(case, "digest"), "{}", s(case, "source"));
    }
}

#[test]
fn sm4_diversify_matches_independent_openssl_computation() {
    let v = load("independent.toml");
    let t = table(&v, "sm4_diversify");
    let key = sm4_diversify(&a(t, "master"), &a(t, "factor"));
    assert_eq!(key.to_vec(), h(t, "key"));
}

#[test]
fn sm2_published_example_key_and_signature_verify() {
    let v = load("sm.toml");
    let t = table(&v, "sm2");
    let pair = Sm2KeyPair::from_secret(&a(t, "private_key")).unwrap();
    assert_eq!(
        pair.public().to_vec(),
        h(t, "public_key"),
        "{}",
        s(t, "source")
    );
    let public = sm2_public_key_from_hex(s(t, "public_key")).unwrap();
    let msg = s(t, "message_ascii").as_bytes();
    let sig = a::<64>(t, "signature");
    sm2_verify(&public, s(t, "id"), msg, &sig).unwrap();
    // Tamper: message, ID, signature.
    assert_eq!(
        sm2_verify(&public, s(t, "id"), b"message digesT", &sig),
        Err(Error::VerificationFailed)
    );
    assert_eq!(
        sm2_verify(&public, "ALICE123@YAHOO.COM", msg, &sig),
        Err(Error::VerificationFailed)
    );
    let mut bad = sig;
    bad[63] ^= 1;
    assert_eq!(
        sm2_verify(&public, s(t, "id"), msg, &bad),
        Err(Error::VerificationFailed)
    );
}

#[test]
fn sm2_za_and_e_match_published_example() {
    // Z_A = SM3(ENTL || ID || a || b || xG || yG || xA || yA), e = SM3(Z_A || M)
    // (GB/T 32918.2-2016 §5.5, §6.1), values from GM/T 0003.5-2012 Annex A.
    let v = load("sm.toml");
    let t = table(&v, "sm2");
    let c = table(&v, "sm2_curve");
    let id = s(t, "id").as_bytes();
    let entl = u16::try_from(id.len() * 8).unwrap().to_be_bytes();
    let public = h(t, "public_key");
    let z_input = [
        &entl[..],
        id,
        &h(c, "a"),
        &h(c, "b"),
        &h(c, "gx"),
        &h(c, "gy"),
        &public[1..],
    ]
    .concat();
    let z = sm3_digest(&z_input);
    assert_eq!(z.to_vec(), h(t, "z_a"));
    let e = sm3_digest(&[&z[..], s(t, "message_ascii").as_bytes()].concat());
    assert_eq!(e.to_vec(), h(t, "e"));
}

#[test]
fn sm2_sign_verify_round_trip_with_default_id() {
    let pair = sm2_generate_keypair().unwrap();
    let sig = sm2_sign(pair.secret(), SM2_DEFAULT_ID, b"settlement batch 42").unwrap();
    sm2_verify(pair.public(), SM2_DEFAULT_ID, b"settlement batch 42", &sig).unwrap();
    assert_eq!(
        sm2_verify(pair.public(), SM2_DEFAULT_ID, b"settlement batch 43", &sig),
        Err(Error::VerificationFailed)
    );
    assert!(!format!("{pair:?}").contains(&hex::encode_upper(**pair.secret())));
}

#[test]
fn sm2_public_key_import_rejects_bad_shapes() {
    assert!(matches!(
        sm2_public_key_from_hex("04abc"),
        Err(Error::OddLengthHex { .. })
    ));
    assert!(matches!(
        sm2_public_key_from_hex("zz"),
        Err(Error::InvalidHex { .. })
    ));
    assert!(matches!(
        sm2_public_key_from_hex(&"00".repeat(65)),
        Err(Error::InvalidAsymmetricKey { .. })
    ));
    // 04 || X || Y with Y off the curve.
    let mut off = "04".to_string();
    off.push_str(&"11".repeat(64));
    assert!(matches!(
        sm2_public_key_from_hex(&off),
        Err(Error::InvalidAsymmetricKey { .. })
    ));
}

#[test]
fn p256_round_trip_and_tamper() {
    let pkcs8 = p256_generate_pkcs8().unwrap();
    let public = p256_public_key(&pkcs8).unwrap();
    assert_eq!(public.len(), 65);
    let sig = p256_sign(&pkcs8, b"partner message").unwrap();
    assert_eq!(sig.len(), 64);
    p256_verify(&public, b"partner message", &sig).unwrap();
    assert_eq!(
        p256_verify(&public, b"partner messagE", &sig),
        Err(Error::VerificationFailed)
    );
}

#[test]
fn p256_public_key_import_checks_the_curve() {
    // The P-256 base point G (FIPS 186-4 D.1.2.3 / SEC 2 §2.4.2) is on the curve.
    let g = "046B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296\
             4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5";
    assert_eq!(
        p256_public_key_from_hex(g).unwrap().to_vec(),
        hex::decode(g).unwrap()
    );
    // The same X with Y + 1 is not.
    let off = format!("{}F6", &g[..g.len() - 2]);
    assert!(matches!(
        p256_public_key_from_hex(&off),
        Err(Error::InvalidAsymmetricKey { .. })
    ));
    assert!(matches!(
        p256_public_key_from_hex(&g[2..]),
        Err(Error::InvalidAsymmetricKey { .. })
    ));
    // A key ring generated is accepted.
    let public = p256_public_key(&p256_generate_pkcs8().unwrap()).unwrap();
    assert!(p256_public_key_from_hex(&hex::encode(&public)).is_ok());
}

/// SM2 decryption of the standard's own ciphertext (GM/T 0003.5-2012 Annex C: the recommended
/// curve, "encryption standard", C1 ‖ C3 ‖ C2), altered ciphertexts refused, and a round trip
/// of `sm2_encrypt` (a fresh k each time, so two encryptions differ).
#[test]
fn sm2_encryption_gmt0003_example_and_round_trip() {
    let v = load("sm.toml");
    let t = table(&v, "sm2_encryption");
    let secret = a::<32>(t, "private_key");
    let mut ciphertext = h(t, "c1");
    ciphertext.extend(h(t, "c3"));
    ciphertext.extend(h(t, "c2"));
    let plain = sm2_decrypt(&secret, &ciphertext).unwrap();
    assert_eq!(
        plain.as_slice(),
        s(t, "message_ascii").as_bytes(),
        "{}",
        s(t, "source")
    );
    // Any changed byte of C3 or C2 is refused, never "decrypted" to something else.
    for at in [65, 65 + 31, 65 + 32, ciphertext.len() - 1] {
        let mut altered = ciphertext.clone();
        altered[at] ^= 0x01;
        assert_eq!(
            sm2_decrypt(&secret, &altered).map(|p| p.to_vec()),
            Err(Error::VerificationFailed),
            "byte {at}"
        );
    }
    assert_eq!(
        sm2_decrypt(&secret, &ciphertext[..97]).map(|p| p.to_vec()),
        Err(Error::VerificationFailed)
    );
    // Round trip to the same key pair; the public key is the standard's (sm.toml [sm2]).
    let pair = Sm2KeyPair::from_secret(&secret).unwrap();
    assert_eq!(
        pair.public().to_vec(),
        h(table(&v, "sm2"), "public_key"),
        "the [sm2] and [sm2_encryption] examples share the key pair"
    );
    let one = sm2_encrypt(pair.public(), b"6214830200000087653").unwrap();
    let two = sm2_encrypt(pair.public(), b"6214830200000087653").unwrap();
    assert_ne!(one, two);
    assert_eq!(one.len(), 65 + 32 + 19);
    assert_eq!(
        sm2_decrypt(&secret, &one).unwrap().as_slice(),
        b"6214830200000087653"
    );
    // Another key pair cannot open it.
    let other = sm2_generate_keypair().unwrap();
    assert_eq!(
        sm2_decrypt(other.secret(), &one).map(|p| p.to_vec()),
        Err(Error::VerificationFailed)
    );
    assert!(sm2_encrypt(pair.public(), b"").is_err());
}
