//! The PBOC debit application (JR/T 0025, EMV-based) on the virtual card: PSE/PPSE and AID
//! selection, GET PROCESSING OPTIONS, READ RECORD over the AFL, GENERATE AC (ARQC/TC/AAC),
//! and EXTERNAL AUTHENTICATE with an ARPC (method 1).
//!
//! Flow and encodings: card-hsm-anchors.md §3 (EMV Book 1 §11–12, Book 3 §6.5). Cryptograms come
//! from `hsm::emv` with the image's issuer master key (a test key): MK by option A (3DES) or the
//! PBOC SM4 variant, session key from the ATC (`derive_session_key_pboc`), AC over exactly the
//! data the terminal sent for CDOL1 (or CDOL2) — the contract's convention; real PBOC cards also
//! MAC AIP‖ATC‖CVR, which this card does not. The ARPC is checked with the session key.
//! The SM4 variant is unverified (no public vector).

use serde::Deserialize;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use hsm::emv::CardAlgorithm;

use crate::apdu::CommandApdu;
use crate::sw::StatusWord;

use super::fs::{CurrentDf, PPSE_NAME, PSE_NAME};
use super::image::{ImageError, bcd_date, bcd_padded, hex_field, key16};
use super::{Delivery, Reply, VirtualCard, ber_tlv};

/// SFI of the PSE directory file (the PSE FCI's tag 88).
pub const PSE_SFI: u8 = 1;
/// SFI of the record holding track 2 and the cardholder name.
pub const TRACK_SFI: u8 = 2;
/// SFI of the records holding PAN, dates, DOLs and the ID number.
pub const APP_SFI: u8 = 3;
/// Longest DOL accepted in an image, in bytes.
pub const DOL_LEN_MAX: usize = 252;
/// `9F27` CID values (EMV Book 3 Table 14).
const CID_AAC: u8 = 0x00;
const CID_TC: u8 = 0x40;
const CID_ARQC: u8 = 0x80;
/// ARC `3030` ("00", approved): the only code that lets the second GENERATE AC give a TC.
const ARC_APPROVED: [u8; 2] = *b"00";

/// The image's `[pboc]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPboc {
    aid: String,
    label: String,
    pan: String,
    psn: u8,
    expiry_date: String,
    effective_date: String,
    cardholder_name: String,
    id_number: String,
    aip: String,
    pdol: String,
    cdol1: String,
    cdol2: String,
    iad: String,
    atc: u16,
    algorithm: String,
    test_keys_only: bool,
    issuer_master_key: String,
}

/// The validated debit application.
pub(crate) struct PbocApp {
    aid: Vec<u8>,
    label: Vec<u8>,
    pan: String,
    psn_bcd: u8,
    aip: [u8; 2],
    pdol: Vec<u8>,
    pdol_data_len: usize,
    cdol1_data_len: usize,
    cdol2_data_len: usize,
    iad: Vec<u8>,
    pub(crate) atc_start: u16,
    algorithm: CardAlgorithm,
    issuer_master_key: Zeroizing<[u8; 16]>,
    afl: Vec<u8>,
    /// `(SFI, records)`, each record a complete `70` template.
    files: Vec<(u8, Vec<Vec<u8>>)>,
}

fn bad(field: &'static str, reason: &'static str) -> ImageError {
    ImageError::Field { field, reason }
}

impl RawPboc {
    pub(crate) fn validate(self) -> Result<PbocApp, ImageError> {
        if !self.test_keys_only {
            return Err(bad(
                "pboc.test_keys_only",
                "a card image holds test keys only",
            ));
        }
        let aid = hex_field("pboc.aid", &self.aid)?;
        if !(5..=16).contains(&aid.len()) {
            return Err(bad("pboc.aid", "must be 5..=16 bytes"));
        }
        let label = ascii("pboc.label", &self.label, 16)?;
        if !(12..=19).contains(&self.pan.len()) || !self.pan.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("pboc.pan", "must be 12..=19 digits"));
        }
        if self.psn > 99 {
            return Err(bad("pboc.psn", "must be 0..=99"));
        }
        let psn_bcd = (self.psn / 10) << 4 | (self.psn % 10);
        let expiry = yymmdd("pboc.expiry_date", &self.expiry_date)?;
        let effective = yymmdd("pboc.effective_date", &self.effective_date)?;
        let name = ascii("pboc.cardholder_name", &self.cardholder_name, 26)?;
        let id_number = ascii("pboc.id_number", &self.id_number, 40)?;
        let aip: [u8; 2] = hex_field("pboc.aip", &self.aip)?
            .as_slice()
            .try_into()
            .map_err(|_| bad("pboc.aip", "must be 2 bytes"))?;
        let pdol = hex_field("pboc.pdol", &self.pdol)?;
        let cdol1 = hex_field("pboc.cdol1", &self.cdol1)?;
        let cdol2 = hex_field("pboc.cdol2", &self.cdol2)?;
        let pdol_data_len = dol_data_len("pboc.pdol", &pdol)?;
        let cdol1_data_len = dol_data_len("pboc.cdol1", &cdol1)?;
        let cdol2_data_len = dol_data_len("pboc.cdol2", &cdol2)?;
        if cdol1_data_len == 0 || cdol2_data_len == 0 {
            return Err(bad("pboc.cdol1", "CDOL1 and CDOL2 must ask for data"));
        }
        let iad = hex_field("pboc.iad", &self.iad)?;
        if iad.len() > 32 {
            return Err(bad("pboc.iad", "must be at most 32 bytes"));
        }
        let algorithm = match self.algorithm.as_str() {
            "tdes" => CardAlgorithm::Tdes,
            "sm4" => CardAlgorithm::Sm4,
            _ => return Err(bad("pboc.algorithm", "must be \"tdes\" or \"sm4\"")),
        };
        let issuer_master_key = key16("pboc.issuer_master_key", &self.issuer_master_key)?;

        let pan_bcd = bcd_padded("pboc.pan", &self.pan, self.pan.len().div_ceil(2))?;
        let track2 = track2_equivalent(&self.pan, &expiry);
        let record_track = ber_tlv(
            &[0x70],
            &[ber_tlv(&[0x57], &track2), ber_tlv(&[0x5F, 0x20], &name)].concat(),
        );
        let record_app = ber_tlv(
            &[0x70],
            &[
                ber_tlv(&[0x5A], &pan_bcd),
                ber_tlv(&[0x5F, 0x34], &[psn_bcd]),
                ber_tlv(&[0x5F, 0x24], &expiry),
                ber_tlv(&[0x5F, 0x25], &effective),
                ber_tlv(&[0x5F, 0x28], &[0x01, 0x56]),
                ber_tlv(&[0x9F, 0x07], &[0xFF, 0x00]),
                ber_tlv(&[0x8C], &cdol1),
                ber_tlv(&[0x8D], &cdol2),
                // CVM list: X = Y = 0; online PIN if the terminal supports it, else no CVM.
                ber_tlv(&[0x8E], &[0, 0, 0, 0, 0, 0, 0, 0, 0x42, 0x03, 0x1F, 0x03]),
                ber_tlv(&[0x9F, 0x08], &[0x00, 0x30]),
            ]
            .concat(),
        );
        let record_holder = ber_tlv(
            &[0x70],
            &[
                ber_tlv(&[0x9F, 0x61], &id_number),
                ber_tlv(&[0x9F, 0x62], &[0x00]),
            ]
            .concat(),
        );
        let afl = vec![TRACK_SFI << 3, 1, 1, 0, APP_SFI << 3, 1, 2, 0];
        Ok(PbocApp {
            aid,
            label,
            pan: self.pan,
            psn_bcd,
            aip,
            pdol,
            pdol_data_len,
            cdol1_data_len,
            cdol2_data_len,
            iad,
            atc_start: self.atc,
            algorithm,
            issuer_master_key,
            afl,
            files: vec![
                (TRACK_SFI, vec![record_track]),
                (APP_SFI, vec![record_app, record_holder]),
            ],
        })
    }
}

fn ascii(field: &'static str, text: &str, len_max: usize) -> Result<Vec<u8>, ImageError> {
    if text.is_empty() || text.len() > len_max || !text.bytes().all(|b| (0x20..0x7F).contains(&b)) {
        return Err(bad(field, "must be 1..=max printable ASCII characters"));
    }
    Ok(text.as_bytes().to_vec())
}

/// `YYYYMMDD` → the 3-byte BCD `YYMMDD` of tags 5F24/5F25.
fn yymmdd(field: &'static str, text: &str) -> Result<Vec<u8>, ImageError> {
    // A calendar date (no 20231399); the card holds its last three BCD bytes YYMMDD.
    let yyyymmdd = bcd_date(field, text)?;
    Ok(yyyymmdd.get(1..).unwrap_or_default().to_vec())
}

/// Total data length a DOL asks for (EMV Book 3 §5.4): tags of 1..=3 bytes, one length byte each.
fn dol_data_len(field: &'static str, dol: &[u8]) -> Result<usize, ImageError> {
    if dol.len() > DOL_LEN_MAX {
        return Err(bad(field, "is longer than 252 bytes"));
    }
    let mut total = 0usize;
    let mut rest = dol;
    while let [first, tail @ ..] = rest {
        let mut tail = tail;
        if first & 0x1F == 0x1F {
            // Subsequent tag bytes while b8 is set, at most two of them.
            let mut more = 0;
            loop {
                let [b, t @ ..] = tail else {
                    return Err(bad(field, "ends inside a tag"));
                };
                tail = t;
                more += 1;
                if b & 0x80 == 0 {
                    break;
                }
                if more == 2 {
                    return Err(bad(field, "has a tag longer than 3 bytes"));
                }
            }
        }
        let [len, t @ ..] = tail else {
            return Err(bad(field, "ends before a length"));
        };
        if *len >= 0x80 {
            return Err(bad(field, "has a length of 128 or more"));
        }
        total += usize::from(*len);
        rest = t;
    }
    // The data must fit one command (GPO template 83, GENERATE AC): the reader's own limit.
    if total > crate::dol::DOL_DATA_LEN_MAX {
        return Err(bad(field, "asks for more than 255 bytes of data"));
    }
    Ok(total)
}

/// Track 2 equivalent data (tag 57): PAN `D` YYMM service code 220, discretionary `00000`,
/// padded with `F` to whole bytes (EMV Book 3 Annex A).
fn track2_equivalent(pan: &str, expiry_yymmdd: &[u8]) -> Vec<u8> {
    let mut nibbles: Vec<u8> = pan.bytes().map(|b| b - b'0').collect();
    nibbles.push(0x0D);
    for b in expiry_yymmdd.iter().take(2) {
        nibbles.extend([b >> 4, b & 0x0F]);
    }
    nibbles.extend([2, 2, 0, 0, 0, 0, 0, 0]);
    if nibbles.len() % 2 == 1 {
        nibbles.push(0x0F);
    }
    nibbles.chunks(2).map(|p| (p[0] << 4) | p[1]).collect()
}

/// Where the current transaction is (reset by SELECT and GPO).
#[derive(Default)]
pub(crate) struct Transaction {
    stage: Stage,
    session_key: Option<Zeroizing<[u8; 16]>>,
    arqc: [u8; 8],
    issuer_auth: Option<(bool, [u8; 2])>,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Stage {
    #[default]
    Idle,
    /// After GET PROCESSING OPTIONS.
    Ready,
    /// After a first GENERATE AC that gave an ARQC.
    Online,
    /// After an AAC/TC: the transaction is over.
    Done,
}

impl VirtualCard {
    /// SELECT by name for PSE, PPSE and the debit AID (exact or a partial AID of 5+ bytes).
    /// `None` when the name is not one of them (or the image has no PBOC application).
    pub(super) fn pboc_select(&mut self, name: &[u8]) -> Option<Reply> {
        let app = self.image.pboc.as_ref()?;
        let directory_entry = ber_tlv(
            &[0x61],
            &[
                ber_tlv(&[0x4F], &app.aid),
                ber_tlv(&[0x50], &app.label),
                ber_tlv(&[0x87], &[1]),
            ]
            .concat(),
        );
        let (df, fci) = if name == PPSE_NAME {
            let a5 = ber_tlv(&[0xA5], &ber_tlv(&[0xBF, 0x0C], &directory_entry));
            (
                CurrentDf::Ppse,
                ber_tlv(&[0x6F], &[ber_tlv(&[0x84], PPSE_NAME), a5].concat()),
            )
        } else if name == PSE_NAME {
            let a5 = ber_tlv(
                &[0xA5],
                &[
                    ber_tlv(&[0x88], &[PSE_SFI]),
                    ber_tlv(&[0x5F, 0x2D], b"zhen"),
                ]
                .concat(),
            );
            (
                CurrentDf::Pse,
                ber_tlv(&[0x6F], &[ber_tlv(&[0x84], PSE_NAME), a5].concat()),
            )
        } else if name.len() >= 5 && app.aid.starts_with(name) {
            let mut prop = [ber_tlv(&[0x50], &app.label), ber_tlv(&[0x87], &[1])].concat();
            if !app.pdol.is_empty() {
                prop.extend(ber_tlv(&[0x9F, 0x38], &app.pdol));
            }
            prop.extend(ber_tlv(&[0x5F, 0x2D], b"zhen"));
            prop.extend(ber_tlv(&[0x9F, 0x11], &[0x01]));
            let fci = ber_tlv(
                &[0x6F],
                &[ber_tlv(&[0x84], &app.aid), ber_tlv(&[0xA5], &prop)].concat(),
            );
            (CurrentDf::Pboc, fci)
        } else {
            return None;
        };
        self.enter_df(df);
        Some(Reply::ok(fci, Delivery::GetResponse))
    }

    /// READ RECORD `00 B2 <rec#> <(SFI<<3)|4>` in PSE, PPSE or the debit application.
    pub(super) fn pboc_read_record(&mut self, cmd: &CommandApdu) -> Reply {
        if !cmd.data().is_empty() {
            return Reply::status(StatusWord::WRONG_LENGTH);
        }
        let Some(app) = self.image.pboc.as_ref() else {
            return Reply::status(StatusWord::FILE_NOT_FOUND);
        };
        if cmd.p2() & 0x07 != 0x04 || cmd.p1() == 0 {
            return Reply::status(StatusWord::INCORRECT_P1_P2);
        }
        let sfi = cmd.p2() >> 3;
        let record = match self.volatile.df {
            CurrentDf::Pse if sfi == PSE_SFI => {
                let entry = ber_tlv(
                    &[0x61],
                    &[
                        ber_tlv(&[0x4F], &app.aid),
                        ber_tlv(&[0x50], &app.label),
                        ber_tlv(&[0x87], &[1]),
                    ]
                    .concat(),
                );
                (cmd.p1() == 1).then(|| ber_tlv(&[0x70], &entry))
            }
            CurrentDf::Pboc => match app.files.iter().find(|(s, _)| *s == sfi) {
                Some((_, records)) => records.get(usize::from(cmd.p1()) - 1).cloned(),
                None => return Reply::status(StatusWord::FILE_NOT_FOUND),
            },
            _ => return Reply::status(StatusWord::FILE_NOT_FOUND),
        };
        match record {
            Some(r) => Reply::ok(r, Delivery::ExactLe),
            None => Reply::status(StatusWord::RECORD_NOT_FOUND),
        }
    }

    /// GET PROCESSING OPTIONS `80 A8 00 00 Lc 83 L <PDOL data> 00` → format 2 `77{82 AIP, 94 AFL}`.
    pub(super) fn get_processing_options(&mut self, cmd: &CommandApdu) -> Reply {
        let Some(app) = self.image.pboc.as_ref() else {
            return Reply::status(StatusWord::CONDITIONS_NOT_SATISFIED);
        };
        if self.volatile.df != CurrentDf::Pboc {
            return Reply::status(StatusWord::CONDITIONS_NOT_SATISFIED);
        }
        if (cmd.p1(), cmd.p2()) != (0, 0) {
            return Reply::status(StatusWord::INCORRECT_P1_P2);
        }
        // Template 83 with a short length, or the `81 xx` form once the PDOL data reaches 128
        // bytes (EMV 4.4 Book 3 Annex B; card-core's `gpo_command` writes minimal lengths).
        let pdol_data = match cmd.data() {
            [0x83, len @ 0..=0x7F, rest @ ..] if usize::from(*len) == rest.len() => Some(rest),
            [0x83, 0x81, len @ 0x80..=0xFF, rest @ ..] if usize::from(*len) == rest.len() => {
                Some(rest)
            }
            _ => None,
        };
        if pdol_data.is_none_or(|data| data.len() != app.pdol_data_len) {
            return Reply::status(StatusWord::WRONG_LENGTH);
        }
        let body = [ber_tlv(&[0x82], &app.aip), ber_tlv(&[0x94], &app.afl)].concat();
        self.volatile.txn = Transaction {
            stage: Stage::Ready,
            ..Transaction::default()
        };
        Reply::ok(ber_tlv(&[0x77], &body), Delivery::GetResponse)
    }

    /// GENERATE AC `80 AE <P1> 00 Lc <CDOL data> 00` → format 1 `80{CID ATC AC IAD}`.
    pub(super) fn generate_ac(&mut self, cmd: &CommandApdu) -> Reply {
        let Some(app) = self.image.pboc.as_ref() else {
            return Reply::status(StatusWord::CONDITIONS_NOT_SATISFIED);
        };
        if self.volatile.df != CurrentDf::Pboc {
            return Reply::status(StatusWord::CONDITIONS_NOT_SATISFIED);
        }
        let requested = cmd.p1() & 0xC0;
        if requested == 0xC0 || cmd.p2() != 0 {
            return Reply::status(StatusWord::INCORRECT_P1_P2);
        }
        let txn = &mut self.volatile.txn;
        let (cid, key) = match txn.stage {
            Stage::Ready => {
                if cmd.data().len() != app.cdol1_data_len {
                    return Reply::status(StatusWord::WRONG_LENGTH);
                }
                let Some(atc) = self.atc.checked_add(1) else {
                    // ATC exhausted: the application may not transact again (EMV Book 3 §7.3).
                    return Reply::status(StatusWord::CONDITIONS_NOT_SATISFIED);
                };
                self.atc = atc;
                let Ok(sk) = session_key(app, atc) else {
                    return Reply::status(StatusWord::NO_PRECISE_DIAGNOSIS);
                };
                // The card goes online whenever the terminal asks for a TC or an ARQC.
                let cid = if requested == 0x00 { CID_AAC } else { CID_ARQC };
                txn.stage = if cid == CID_ARQC {
                    Stage::Online
                } else {
                    Stage::Done
                };
                txn.session_key = Some(sk.clone());
                (cid, sk)
            }
            Stage::Online => {
                if cmd.data().len() != app.cdol2_data_len {
                    return Reply::status(StatusWord::WRONG_LENGTH);
                }
                if requested == 0x80 {
                    return Reply::status(StatusWord::CONDITIONS_NOT_SATISFIED);
                }
                let approved = matches!(txn.issuer_auth, Some((true, arc)) if arc == ARC_APPROVED);
                let cid = if requested == 0x40 && approved {
                    CID_TC
                } else {
                    CID_AAC
                };
                let Some(sk) = txn.session_key.clone() else {
                    return Reply::status(StatusWord::CONDITIONS_NOT_SATISFIED);
                };
                txn.stage = Stage::Done;
                (cid, sk)
            }
            Stage::Idle | Stage::Done => {
                return Reply::status(StatusWord::CONDITIONS_NOT_SATISFIED);
            }
        };
        let Ok(ac) = hsm::emv::generate_arqc(&key, app.algorithm, cmd.data()) else {
            return Reply::status(StatusWord::NO_PRECISE_DIAGNOSIS);
        };
        if cid == CID_ARQC {
            txn.arqc = ac;
        }
        let mut body = vec![cid];
        body.extend_from_slice(&self.atc.to_be_bytes());
        body.extend_from_slice(&ac);
        body.extend_from_slice(&app.iad);
        Reply::ok(ber_tlv(&[0x80], &body), Delivery::GetResponse)
    }

    /// EXTERNAL AUTHENTICATE `00 82 00 00 0A <ARPC 8 || ARC 2>` after an ARQC (method 1).
    /// `9000` when the ARPC matches, `6300` when it does not; once per transaction.
    pub(super) fn pboc_external_authenticate(&mut self, cmd: &CommandApdu) -> Reply {
        let Some(app) = self.image.pboc.as_ref() else {
            return Reply::status(StatusWord::CONDITIONS_NOT_SATISFIED);
        };
        if (cmd.p1(), cmd.p2()) != (0, 0) {
            return Reply::status(StatusWord::INCORRECT_P1_P2);
        }
        let [arpc @ .., arc1, arc2] = cmd.data() else {
            return Reply::status(StatusWord::WRONG_LENGTH);
        };
        if arpc.len() != 8 {
            return Reply::status(StatusWord::WRONG_LENGTH);
        }
        let txn = &mut self.volatile.txn;
        let (Stage::Online, None, Some(sk)) =
            (txn.stage, txn.issuer_auth, txn.session_key.as_ref())
        else {
            return Reply::status(StatusWord::CONDITIONS_NOT_SATISFIED);
        };
        let arc = [*arc1, *arc2];
        let Ok(expected) = hsm::emv::generate_arpc_method1(sk, app.algorithm, &txn.arqc, arc)
        else {
            return Reply::status(StatusWord::NO_PRECISE_DIAGNOSIS);
        };
        let passed = bool::from(expected.as_slice().ct_eq(arpc));
        txn.issuer_auth = Some((passed, arc));
        Reply::status(if passed {
            StatusWord::SUCCESS
        } else {
            StatusWord::from_u16(0x6300)
        })
    }
}

/// ICC master key from the issuer master key, then the session key for `atc`.
fn session_key(app: &PbocApp, atc: u16) -> Result<Zeroizing<[u8; 16]>, hsm::error::Error> {
    let mk = match app.algorithm {
        CardAlgorithm::Tdes => {
            hsm::emv::derive_icc_master_key_option_a(&app.issuer_master_key, &app.pan, app.psn_bcd)?
        }
        CardAlgorithm::Sm4 => {
            hsm::emv::derive_icc_master_key_sm4(&app.issuer_master_key, &app.pan, app.psn_bcd)?
        }
    };
    hsm::emv::derive_session_key_pboc(&mk, atc.to_be_bytes(), app.algorithm)
}
