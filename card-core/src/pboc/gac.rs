//! GENERATE AC and issuer authentication framing (EMV 4.4 Book 3 §6.5.5 and §6.5.4;
//! card-hsm-anchors.md §3 steps 6-8). Cryptograms are computed by the HSM; this module only
//! frames the commands and parses the answers.

use crate::apdu::CommandApdu;
use crate::dol::{Dol, DolSource};
use crate::sw::StatusWord;
use crate::tlv::{self, Tlv};
use crate::transport::{CardError, CardTransport, Session};

use super::{PbocError, tags};

/// Most bytes of issuer application data (`9F10`, EMV Book 3 Annex A: var. up to 32).
pub const IAD_LEN_MAX: usize = 32;

/// The cryptogram asked for in GENERATE AC P1 (bits 8-7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcType {
    /// `00` application authentication cryptogram (decline).
    Aac,
    /// `40` transaction certificate (approve offline / after online).
    Tc,
    /// `80` authorisation request cryptogram (go online).
    Arqc,
}

impl AcType {
    /// The P1 byte (no CDA).
    pub const fn p1(self) -> u8 {
        match self {
            Self::Aac => 0x00,
            Self::Tc => 0x40,
            Self::Arqc => 0x80,
        }
    }
}

/// The cryptogram type the card returned (CID bits 8-7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptogramType {
    /// `00xx xxxx` AAC.
    Aac,
    /// `01xx xxxx` TC.
    Tc,
    /// `10xx xxxx` ARQC.
    Arqc,
    /// `11xx xxxx` reserved.
    Rfu,
}

/// The card's answer to GENERATE AC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateAcResponse {
    /// Cryptogram information data (`9F27`).
    pub cid: u8,
    /// Application transaction counter (`9F36`).
    pub atc: [u8; 2],
    /// Application cryptogram (`9F26`).
    pub ac: [u8; 8],
    /// Issuer application data (`9F10`), possibly empty.
    pub iad: Vec<u8>,
}

impl GenerateAcResponse {
    /// The cryptogram type from the CID.
    pub fn cryptogram_type(&self) -> CryptogramType {
        match self.cid >> 6 {
            0 => CryptogramType::Aac,
            1 => CryptogramType::Tc,
            2 => CryptogramType::Arqc,
            _ => CryptogramType::Rfu,
        }
    }
}

/// GENERATE AC `80 AE <P1> 00 Lc <CDOL data> 00`.
///
/// Errors: [`PbocError::DataTooLong`] past 255 bytes of CDOL data.
pub fn generate_ac_command(ac_type: AcType, cdol_data: &[u8]) -> Result<CommandApdu, PbocError> {
    if cdol_data.len() > 255 {
        return Err(PbocError::DataTooLong {
            len_bytes: cdol_data.len(),
        });
    }
    CommandApdu::new(0x80, 0xAE, ac_type.p1(), 0x00)
        .with_data(cdol_data.to_vec())
        .and_then(|c| c.with_ne(256))
        .map_err(|e| PbocError::Card(CardError::Transport(e.into())))
}

/// Parses a GENERATE AC answer: format 1 `80 <CID(1) ATC(2) AC(8) IAD(0..=32)>` or format 2
/// `77 { 9F27, 9F36, 9F26, 9F10 (optional), ... }`.
///
/// Errors: [`PbocError::Tlv`], [`PbocError::Format`], [`PbocError::MissingData`].
pub fn parse_generate_ac_response(data: &[u8]) -> Result<GenerateAcResponse, PbocError> {
    let object = Tlv::from_bytes(data).map_err(|e| PbocError::tlv("GENERATE AC response", e))?;
    let bad = |what| PbocError::Format { what };
    let (cid, atc, ac, iad): (&[u8], &[u8], &[u8], &[u8]) =
        if object.tag() == tags::RESPONSE_FORMAT_1 {
            let value = object.primitive_value().unwrap_or_default();
            if value.len() < 11 {
                return Err(bad("GENERATE AC format 1 shorter than CID+ATC+AC"));
            }
            (&value[..1], &value[1..3], &value[3..11], &value[11..])
        } else if object.tag() == tags::RESPONSE_FORMAT_2 {
            let children = object.children();
            let get = |tag| tlv::find_value(children, tag).ok_or(PbocError::MissingData { tag });
            (
                get(tags::CID)?,
                get(tags::ATC)?,
                get(tags::AC)?,
                tlv::find_value(children, tags::IAD).unwrap_or_default(),
            )
        } else {
            return Err(bad("GENERATE AC response is neither template 80 nor 77"));
        };
    if iad.len() > IAD_LEN_MAX {
        return Err(bad("issuer application data longer than 32 bytes"));
    }
    Ok(GenerateAcResponse {
        cid: *cid
            .first()
            .filter(|_| cid.len() == 1)
            .ok_or(bad("CID is not 1 byte"))?,
        atc: atc.try_into().map_err(|_| bad("ATC is not 2 bytes"))?,
        ac: ac.try_into().map_err(|_| bad("AC is not 8 bytes"))?,
        iad: iad.to_vec(),
    })
}

/// Sends GENERATE AC with ready-made CDOL data and parses the answer.
///
/// Errors: [`PbocError`].
pub fn generate_ac<T: CardTransport>(
    session: &mut Session<T>,
    ac_type: AcType,
    cdol_data: &[u8],
) -> Result<GenerateAcResponse, PbocError> {
    let data = session.exchange_ok(&generate_ac_command(ac_type, cdol_data)?)?;
    parse_generate_ac_response(&data)
}

/// GENERATE AC with `cdol` (CDOL1 for the first, CDOL2 for the second) filled from `source`.
///
/// Errors: [`PbocError`].
pub fn generate_ac_with_dol<T: CardTransport>(
    session: &mut Session<T>,
    ac_type: AcType,
    cdol: &Dol,
    source: &dyn DolSource,
) -> Result<GenerateAcResponse, PbocError> {
    generate_ac(session, ac_type, &cdol.fill(source))
}

/// EXTERNAL AUTHENTICATE for issuer authentication, ARPC method 1: `00 82 00 00 0A <ARPC(8) ||
/// ARC(2)>`.
pub fn issuer_authenticate_command(arpc: &[u8; 8], arc: [u8; 2]) -> Result<CommandApdu, PbocError> {
    let mut data = arpc.to_vec();
    data.extend_from_slice(&arc);
    CommandApdu::new(0x00, 0x82, 0x00, 0x00)
        .with_data(data)
        .map_err(|e| PbocError::Card(CardError::Transport(e.into())))
}

/// Sends the issuer authentication data.
///
/// Errors: [`PbocError::IssuerAuthenticationFailed`] on `6300`, [`PbocError::Card`] otherwise.
pub fn issuer_authenticate<T: CardTransport>(
    session: &mut Session<T>,
    arpc: &[u8; 8],
    arc: [u8; 2],
) -> Result<(), PbocError> {
    let sw = session
        .exchange(&issuer_authenticate_command(arpc, arc)?)
        .map_err(CardError::from)?
        .sw();
    match sw {
        sw if sw.is_success() => Ok(()),
        sw if sw == StatusWord::from_u16(0x6300) => Err(PbocError::IssuerAuthenticationFailed),
        sw => Err(CardError::Status { ins: 0x82, sw }.into()),
    }
}
