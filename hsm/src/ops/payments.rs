//! Payment operations: EMV/PBOC ARQC verification with ARPC, PIN translation and verification,
//! the social security card's authentication cryptograms, and SM2 / ECDSA signatures.

use zeroize::Zeroizing;

use super::{Hsm, HsmError, modes, use_key, wrong_algorithm};
use crate::emv::CardAlgorithm;
use crate::keystore::{KeyAlgorithm, KeyMetadata, KeyUsage, SecretKey};
use crate::pin::PinBlockFormat;
use crate::pin::verify::Ibm3624Params;

/// Derivation of the ICC master key from the issuer master key (AWS `MajorKeyDerivationMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MajorKeyDerivation {
    /// EMV 4.x Book 2 A1.4.1 option A (3DES issuer key).
    EmvOptionA,
    /// PBOC 3.0 SM4 derivation (SM4 issuer key; unverified: no public vector).
    PbocSm4,
}

/// Session key derivation (AWS `SessionKeyDerivationAttributes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionKeyDerivation {
    /// EMV common session key from ATC and unpredictable number (EMV 4.x Book 2 A1.3, 3DES).
    EmvCommon {
        /// The terminal's unpredictable number (tag 9F37).
        un: [u8; 4],
    },
    /// PBOC 2.0/3.0 session key from the ATC (3DES or SM4).
    Pboc,
}

/// Which ARPC to return after a good ARQC.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArpcRequest {
    /// Method 1 (EMV Book 2 8.2.1) with this authorisation response code.
    Method1 {
        /// ARC (tag 8A), 2 bytes.
        arc: [u8; 2],
    },
    /// Method 2 (EMV Book 2 8.2.2) with this card status update and proprietary data.
    Method2 {
        /// CSU, 4 bytes.
        csu: [u8; 4],
        /// Proprietary authentication data, 0-8 bytes.
        proprietary_auth_data: Vec<u8>,
    },
}

/// `VerifyAuthRequestCryptogram` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArqcRequest {
    /// Alias of the issuer master key for AC (usage `E0`, mode `X`).
    pub alias: String,
    /// PAN (12-19 digits; masked in the audit log).
    pub pan: String,
    /// PAN sequence number (tag 5F34), BCD.
    pub psn: u8,
    /// Application transaction counter (tag 9F36).
    pub atc: [u8; 2],
    /// Data the card MACed (CDOL1 data as the scheme assembles it).
    pub transaction_data: Vec<u8>,
    /// The ARQC (tag 9F26).
    pub arqc: [u8; 8],
    /// ICC master key derivation.
    pub major_key_derivation: MajorKeyDerivation,
    /// Session key derivation.
    pub session_key_derivation: SessionKeyDerivation,
    /// The ARPC wanted, if any.
    pub arpc: Option<ArpcRequest>,
    /// Whether the ARPC is computed with the ICC master key instead of the session key (Visa
    /// CVN 10/18 style); `false` (session key) is the EMV 4.x CSK rule.
    pub arpc_with_card_master_key: bool,
}

/// PIN verification method for `VerifyPinData`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PinVerification {
    /// IBM 3624 PIN offset (PVK usage `V1`).
    Ibm3624 {
        /// Decimalisation table, 16 digits.
        decimalization_table: String,
        /// Validation data, 16 hex digits.
        validation_data: String,
        /// The PIN offset, 4-12 digits.
        offset: String,
    },
    /// Visa PVV (PVK usage `V2`).
    VisaPvv {
        /// PVK index, 0-9.
        pvki: u8,
        /// The PVV, 4 digits.
        pvv: String,
    },
}

fn key16(
    meta: &KeyMetadata,
    key: &SecretKey,
    expected: &'static str,
) -> Result<[u8; 16], HsmError> {
    <[u8; 16]>::try_from(key.expose()).map_err(|_| wrong_algorithm(meta, expected))
}

/// The last 8 bytes of the 卡识别码 (8..=32 bytes; 16 on real cards, ssc-card.md EF05 tag 01).
fn card_factor(card_id: &[u8]) -> Result<[u8; 8], HsmError> {
    if !(8..=32).contains(&card_id.len()) {
        return Err(HsmError::InvalidRequest {
            field: String::from("card_id"),
            reason: format!("must be 8 to 32 bytes, got {}", card_id.len()),
        });
    }
    let mut factor = [0u8; 8];
    factor.copy_from_slice(&card_id[card_id.len() - 8..]);
    Ok(factor)
}

fn ssc_card_key(
    meta: &KeyMetadata,
    master: &SecretKey,
    card_id: &[u8],
) -> Result<Zeroizing<[u8; 16]>, HsmError> {
    if meta.header.algorithm != KeyAlgorithm::Sm4 {
        return Err(wrong_algorithm(meta, "SM4"));
    }
    let master = Zeroizing::new(key16(meta, master, "SM4")?);
    Ok(Zeroizing::new(crate::sm::sm4_diversify(
        &master,
        &card_factor(card_id)?,
    )))
}

impl Hsm {
    /// `VerifyAuthRequestCryptogram`: derives the ICC master key and the session key, checks
    /// the ARQC in constant time, and returns the ARPC asked for (8 bytes for method 1, 4 for
    /// method 2), or `None`.
    ///
    /// Errors: [`HsmError::VerificationFailed`], usage (`E0`), mode (`X`), algorithm (option A
    /// needs TDES_2KEY, PBOC SM4 an SM4 key; EMV CSK is TDES only), PAN/PSN errors.
    pub fn verify_auth_request_cryptogram(
        &mut self,
        caller: &str,
        req: &ArqcRequest,
    ) -> Result<Option<Vec<u8>>, HsmError> {
        self.run(caller, "VerifyAuthRequestCryptogram", |store, ctx| {
            ctx.pan(&req.pan);
            let (meta, imk) = use_key(
                store,
                ctx,
                &req.alias,
                &[KeyUsage::E0],
                modes::DERIVE,
                "key derivation",
            )?;
            let (algorithm, expected) = match req.major_key_derivation {
                MajorKeyDerivation::EmvOptionA => (CardAlgorithm::Tdes, KeyAlgorithm::Tdes2),
                MajorKeyDerivation::PbocSm4 => (CardAlgorithm::Sm4, KeyAlgorithm::Sm4),
            };
            if meta.header.algorithm != expected {
                return Err(wrong_algorithm(&meta, expected.name()));
            }
            let imk = Zeroizing::new(key16(&meta, &imk, expected.name())?);
            let mk = match algorithm {
                CardAlgorithm::Tdes => {
                    crate::emv::derive_icc_master_key_option_a(&imk, &req.pan, req.psn)?
                }
                CardAlgorithm::Sm4 => {
                    crate::emv::derive_icc_master_key_sm4(&imk, &req.pan, req.psn)?
                }
            };
            let sk = match req.session_key_derivation {
                SessionKeyDerivation::EmvCommon { un } => {
                    if algorithm != CardAlgorithm::Tdes {
                        return Err(HsmError::InvalidRequest {
                            field: String::from("session_key_derivation"),
                            reason: String::from(
                                "EMV_COMMON is defined for TDES keys only; use PBOC",
                            ),
                        });
                    }
                    crate::emv::derive_session_key_emv_csk(&mk, req.atc, un)?
                }
                SessionKeyDerivation::Pboc => {
                    crate::emv::derive_session_key_pboc(&mk, req.atc, algorithm)?
                }
            };
            crate::emv::verify_arqc(&sk, algorithm, &req.transaction_data, &req.arqc)?;
            let arpc_key: &[u8; 16] = if req.arpc_with_card_master_key {
                &mk
            } else {
                &sk
            };
            Ok(match &req.arpc {
                None => None,
                Some(ArpcRequest::Method1 { arc }) => Some(
                    crate::emv::generate_arpc_method1(arpc_key, algorithm, &req.arqc, *arc)?
                        .to_vec(),
                ),
                Some(ArpcRequest::Method2 {
                    csu,
                    proprietary_auth_data,
                }) => Some(
                    crate::emv::generate_arpc_method2(
                        arpc_key,
                        algorithm,
                        &req.arqc,
                        *csu,
                        proprietary_auth_data,
                    )?
                    .to_vec(),
                ),
            })
        })
    }

    /// `TranslatePinData`: PIN block from `in_alias` / `in_format` to `out_alias` / `out_format`
    /// (both `P0`), ISO 9564-1 formats 0, 1, 3, 4; the PAN binds PAN-bound formats.
    ///
    /// Errors: usage/mode, format rules (format 1 cannot become PAN-bound), PIN-block errors.
    #[allow(clippy::too_many_arguments)]
    pub fn translate_pin_data(
        &mut self,
        caller: &str,
        in_alias: &str,
        in_format: PinBlockFormat,
        out_alias: &str,
        out_format: PinBlockFormat,
        pin_block: &[u8],
        pan: Option<&str>,
    ) -> Result<Vec<u8>, HsmError> {
        self.run(caller, "TranslatePinData", |store, ctx| {
            if let Some(pan) = pan {
                ctx.pan(pan);
            }
            let (_, key_in) = use_key(
                store,
                ctx,
                in_alias,
                &[KeyUsage::P0],
                modes::DECRYPT,
                "PIN decryption",
            )?;
            let (_, key_out) = use_key(
                store,
                ctx,
                out_alias,
                &[KeyUsage::P0],
                modes::ENCRYPT,
                "PIN encryption",
            )?;
            Ok(crate::pin::translate_pin_block(
                pin_block,
                key_in.expose(),
                in_format,
                key_out.expose(),
                out_format,
                pan,
            )?)
        })
    }

    /// `VerifyPinData`: deciphers the PIN block under `pek_alias` (`P0`) and checks it with the
    /// PVK `pvk_alias` (`V1` IBM 3624 offset or `V2` Visa PVV).
    ///
    /// Errors: [`HsmError::VerificationFailed`] for a wrong PIN, usage/mode, parameter errors.
    #[allow(clippy::too_many_arguments)]
    pub fn verify_pin_data(
        &mut self,
        caller: &str,
        pek_alias: &str,
        format: PinBlockFormat,
        pin_block: &[u8],
        pan: &str,
        pvk_alias: &str,
        method: &PinVerification,
    ) -> Result<(), HsmError> {
        self.run(caller, "VerifyPinData", |store, ctx| {
            ctx.pan(pan);
            let (_, pek) = use_key(
                store,
                ctx,
                pek_alias,
                &[KeyUsage::P0],
                modes::DECRYPT,
                "PIN decryption",
            )?;
            let usage = match method {
                PinVerification::Ibm3624 { .. } => KeyUsage::V1,
                PinVerification::VisaPvv { .. } => KeyUsage::V2,
            };
            let (_, pvk) = use_key(
                store,
                ctx,
                pvk_alias,
                &[usage],
                modes::VERIFY,
                "PIN verification",
            )?;
            let ok = match method {
                PinVerification::Ibm3624 {
                    decimalization_table,
                    validation_data,
                    offset,
                } => crate::pin::verify::verify_ibm3624_offset(
                    pin_block,
                    pek.expose(),
                    format,
                    Some(pan),
                    pvk.expose(),
                    &Ibm3624Params {
                        decimalization_table,
                        validation_data,
                    },
                    offset,
                )?,
                PinVerification::VisaPvv { pvki, pvv } => crate::pin::verify::verify_visa_pvv(
                    pin_block,
                    pek.expose(),
                    format,
                    pan,
                    pvk.expose(),
                    *pvki,
                    pvv,
                )?,
            };
            if ok {
                Ok(())
            } else {
                Err(HsmError::VerificationFailed)
            }
        })
    }

    /// `GenerateCardAuthCryptogram`: the social security card's EXTERNAL AUTHENTICATE data,
    /// `SM4_ECB(K_EXT, challenge ‖ 00×8)` (16 bytes), with K_EXT = `sm4_diversify(master, last 8
    /// bytes of the 卡识别码)`; `alias` is the external-authentication master key (usage `11`).
    /// Model, not verified against the MOHRSS spec (see docs/ssc-auth-model.md).
    ///
    /// Errors: usage/mode/algorithm (SM4), `card_id` length.
    pub fn generate_card_auth_cryptogram(
        &mut self,
        caller: &str,
        alias: &str,
        card_id: &[u8],
        challenge: [u8; 8],
    ) -> Result<[u8; 16], HsmError> {
        self.run(caller, "GenerateCardAuthCryptogram", |store, ctx| {
            let (meta, master) = use_key(
                store,
                ctx,
                alias,
                &[KeyUsage::SscExternalAuth],
                modes::DERIVE,
                "key derivation",
            )?;
            let k_ext = ssc_card_key(&meta, &master, card_id)?;
            let mut block = [0u8; 16];
            block[..8].copy_from_slice(&challenge);
            let out = crate::sm::sm4_encrypt_ecb(&k_ext, &block)?;
            <[u8; 16]>::try_from(out.as_slice()).map_err(|_| HsmError::VerificationFailed)
        })
    }

    /// `VerifyCardInternalAuth`: recomputes the card's INTERNAL AUTHENTICATE answer
    /// `SM4_ECB(K_INT, auth_data)` (auth_data = 8-byte 过程因子 ‖ 8-byte terminal random) with
    /// K_INT diversified from the internal-authentication master key (usage `10`) and compares
    /// it with `card_response` in constant time. Model, not verified against the MOHRSS spec.
    ///
    /// Errors: [`HsmError::VerificationFailed`], usage/mode/algorithm, `card_id` length.
    pub fn verify_card_internal_auth(
        &mut self,
        caller: &str,
        alias: &str,
        card_id: &[u8],
        auth_data: [u8; 16],
        card_response: [u8; 16],
    ) -> Result<(), HsmError> {
        self.run(caller, "VerifyCardInternalAuth", |store, ctx| {
            let (meta, master) = use_key(
                store,
                ctx,
                alias,
                &[KeyUsage::SscInternalAuth],
                modes::DERIVE,
                "key derivation",
            )?;
            let k_int = ssc_card_key(&meta, &master, card_id)?;
            let expected = crate::sm::sm4_encrypt_ecb(&k_int, &auth_data)?;
            crate::mac::verify_truncated(&expected, &card_response)?;
            if expected.len() != card_response.len() {
                return Err(HsmError::VerificationFailed);
            }
            Ok(())
        })
    }

    /// `SignData`: SM2 (with SM3 and the distinguishing ID `sm2_id`) or ECDSA P-256/SHA-256,
    /// `r ‖ s` (64 bytes), with an `S0` key.
    ///
    /// Errors: usage/mode/algorithm.
    pub fn sign_data(
        &mut self,
        caller: &str,
        alias: &str,
        message: &[u8],
        sm2_id: &str,
    ) -> Result<Vec<u8>, HsmError> {
        self.run(caller, "SignData", |store, ctx| {
            let (meta, key) = use_key(store, ctx, alias, &[KeyUsage::S0], modes::SIGN, "signing")?;
            Ok(crate::keystore::sign(
                meta.header.algorithm,
                &key,
                message,
                sm2_id,
            )?)
        })
    }

    /// `VerifySignature`: checks a signature made by [`Hsm::sign_data`].
    ///
    /// Errors: [`HsmError::VerificationFailed`], usage/mode/algorithm.
    pub fn verify_signature(
        &mut self,
        caller: &str,
        alias: &str,
        message: &[u8],
        signature: &[u8],
        sm2_id: &str,
    ) -> Result<(), HsmError> {
        self.run(caller, "VerifySignature", |store, ctx| {
            let (meta, key) = use_key(
                store,
                ctx,
                alias,
                &[KeyUsage::S0],
                modes::VERIFY_SIGNATURE,
                "signature verification",
            )?;
            Ok(crate::keystore::verify(
                meta.header.algorithm,
                &key,
                message,
                signature,
                sm2_id,
            )?)
        })
    }

    /// `DecryptAsymmetric`: SM2 decryption (GB/T 32918.4-2016, `C1‖C3‖C2`, made with
    /// `hsm::sm::sm2_encrypt` to the public key from [`Hsm::get_public_key`]) with a `D1` SM2
    /// key pair, mode `D`, `B` or `N`. The plaintext comes back in a zeroizing buffer; the
    /// caller keeps it no longer than it must (e.g. a PAN sealed by a terminal).
    ///
    /// Errors: [`HsmError::VerificationFailed`] for a ciphertext that is malformed, altered or
    /// made for another key; usage/mode/algorithm.
    pub fn decrypt_asymmetric(
        &mut self,
        caller: &str,
        alias: &str,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, HsmError> {
        self.run(caller, "DecryptAsymmetric", |store, ctx| {
            let (meta, key) = use_key(
                store,
                ctx,
                alias,
                &[KeyUsage::D1],
                modes::DECRYPT,
                "asymmetric decryption",
            )?;
            if meta.header.algorithm != KeyAlgorithm::Sm2 {
                return Err(wrong_algorithm(&meta, "SM2"));
            }
            let secret = <&[u8; 32]>::try_from(key.expose()).map_err(|_| {
                HsmError::from(crate::error::Error::InvalidAsymmetricKey {
                    reason: "SM2 private key must be 32 bytes",
                })
            })?;
            Ok(crate::sm::sm2_decrypt(secret, ciphertext)?)
        })
    }

    /// `GetPublicKey`: the uncompressed public key (65 bytes) of an `S0` (signature) or `D1`
    /// (encryption) key pair.
    ///
    /// Errors: [`HsmError::KeyNotFound`], usage, algorithm.
    pub fn get_public_key(&mut self, caller: &str, alias: &str) -> Result<Vec<u8>, HsmError> {
        self.run(caller, "GetPublicKey", |store, ctx| {
            let (meta, key) = use_key(
                store,
                ctx,
                alias,
                &[KeyUsage::S0, KeyUsage::D1],
                modes::PUBLIC_KEY,
                "public key export",
            )?;
            Ok(crate::keystore::public_key(meta.header.algorithm, &key)?)
        })
    }
}
