//! The selected PBOC application's data: GET PROCESSING OPTIONS, READ RECORD over the AFL, and
//! the typed result [`PbocApplication`] (EMV 4.4 Book 3 §10.1-10.2; card-hsm-anchors.md §3
//! steps 2-4). The PAN, track 2, name and ID number sit in masking wrappers.

use std::collections::BTreeMap;
use std::fmt;

use crate::apdu::CommandApdu;
use crate::dol::{AflEntry, Dol, DolSource, parse_afl};
use crate::ssc::{CardDate, PersonName};
use crate::tlv::{self, Tag, Tlv};
use crate::transport::{CardError, CardTransport, Session};

use super::{PbocError, tags};

/// Most records read over one AFL.
pub const AFL_RECORDS_MAX: usize = 64;
/// Most distinct data objects kept from the records.
pub const CARD_DATA_OBJECTS_MAX: usize = 256;

/// An application PAN (tag `5A`): 12..=19 digits. `Debug` shows the first 6 and last 4:
/// `622123******0123`.
#[derive(Clone, PartialEq, Eq)]
pub struct Pan(String);

impl Pan {
    /// From its digits; `None` unless 12..=19 ASCII digits.
    pub fn new(digits: &str) -> Option<Self> {
        ((12..=19).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| Self(digits.to_owned()))
    }

    /// The digits in clear. Callers must not log them.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True if the last digit is the Luhn (ISO/IEC 7812-1 Annex B) check digit.
    pub fn luhn_valid(&self) -> bool {
        let sum: u32 = self
            .0
            .bytes()
            .rev()
            .enumerate()
            .map(|(i, b)| {
                let d = u32::from(b - b'0');
                if i % 2 == 1 {
                    if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
                } else {
                    d
                }
            })
            .sum();
        sum.is_multiple_of(10)
    }
}

impl fmt::Debug for Pan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask(&self.0))
    }
}

/// Sensitive bytes or text (track 2 equivalent data, the cardholder ID number 9F61) whose
/// `Debug` shows only the length.
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive<T>(T);

impl<T> Sensitive<T> {
    /// The value in clear. Callers must not log it.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl fmt::Debug for Sensitive<Vec<u8>> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes hidden>", self.0.len())
    }
}

impl fmt::Debug for Sensitive<String> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask(&self.0))
    }
}

/// First 6 and last 4 characters kept.
fn mask(text: &str) -> String {
    crate::ssc::mask_middle(text, 6, 4)
}

/// Data objects read from the records, first occurrence kept. `Debug` shows the tags only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct CardData(BTreeMap<Tag, Vec<u8>>);

impl CardData {
    /// The value of `tag`.
    pub fn get(&self, tag: Tag) -> Option<&[u8]> {
        self.0.get(&tag).map(Vec::as_slice)
    }

    /// Adds every primitive object in `objects` (and below) not yet present.
    fn absorb(&mut self, objects: &[Tlv]) -> Result<(), PbocError> {
        let mut stack: Vec<&Tlv> = objects.iter().rev().collect();
        while let Some(object) = stack.pop() {
            match object.primitive_value() {
                Some(value) => {
                    if !self.0.contains_key(&object.tag()) {
                        if self.0.len() >= CARD_DATA_OBJECTS_MAX {
                            return Err(PbocError::Format {
                                what: "too many data objects in the records",
                            });
                        }
                        self.0.insert(object.tag(), value.to_vec());
                    }
                }
                None => stack.extend(object.children().iter().rev()),
            }
        }
        Ok(())
    }
}

impl fmt::Debug for CardData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl DolSource for CardData {
    fn dol_value(&self, tag: Tag) -> Option<(crate::dol::DataFormat, &[u8])> {
        self.get(tag).map(|v| (crate::dol::DataFormat::of(tag), v))
    }
}

/// The PBOC debit application as read from the card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbocApplication {
    /// The selected AID (DF name).
    pub aid: Vec<u8>,
    /// Application label (`50`), if any.
    pub label: Option<String>,
    /// PDOL (`9F38`) from the FCI; empty if the card has none.
    pub pdol: Dol,
    /// Application interchange profile (`82`).
    pub aip: [u8; 2],
    /// Application file locator (`94`).
    pub afl: Vec<AflEntry>,
    /// PAN (`5A`).
    pub pan: Pan,
    /// PAN sequence number (`5F34`), if present.
    pub psn: Option<u8>,
    /// Application expiration date (`5F24`, YYMMDD, read as 20YY).
    pub expiry: CardDate,
    /// Cardholder name (`5F20`, GBK, trailing spaces removed), if present.
    pub cardholder_name: Option<PersonName>,
    /// Track 2 equivalent data (`57`), if present.
    pub track2: Option<Sensitive<Vec<u8>>>,
    /// CDOL1 (`8C`).
    pub cdol1: Dol,
    /// CDOL2 (`8D`).
    pub cdol2: Dol,
    /// Cardholder ID number (`9F61`), if present.
    pub id_number: Option<Sensitive<String>>,
    /// Cardholder ID type (`9F62`: 00 身份证, 01 军官证, 02 护照, ...), if present.
    pub id_type: Option<u8>,
    /// Every primitive data object of the records, for what the fields above do not cover.
    pub card_data: CardData,
}

/// GET PROCESSING OPTIONS `80 A8 00 00 Lc 83 L <PDOL data> 00` (`83 00` without a PDOL).
///
/// Errors: [`PbocError::DataTooLong`] if the command data passes 255 bytes.
pub fn gpo_command(pdol_data: &[u8]) -> Result<CommandApdu, PbocError> {
    let template = Tlv::primitive(tags::COMMAND_TEMPLATE, pdol_data.to_vec())
        .map_err(|e| PbocError::tlv("GPO template", e))?
        .to_bytes();
    if template.len() > 255 {
        return Err(PbocError::DataTooLong {
            len_bytes: template.len(),
        });
    }
    CommandApdu::new(0x80, 0xA8, 0x00, 0x00)
        .with_data(template)
        .and_then(|c| c.with_ne(256))
        .map_err(|e| PbocError::Card(CardError::Transport(e.into())))
}

/// The AIP and AFL of a GPO answer: format 1 `80 <AIP(2) AFL(4n)>` or format 2
/// `77 { 82 AIP, 94 AFL, ... }`. A missing AFL is an empty list.
///
/// Errors: [`PbocError::Tlv`], [`PbocError::Format`], [`PbocError::MissingData`],
/// [`PbocError::Dol`].
pub fn parse_gpo_response(data: &[u8]) -> Result<([u8; 2], Vec<AflEntry>), PbocError> {
    let object = Tlv::from_bytes(data).map_err(|e| PbocError::tlv("GPO response", e))?;
    let (aip, afl) = if object.tag() == tags::RESPONSE_FORMAT_1 {
        let value = object.primitive_value().unwrap_or_default();
        if value.len() < 2 {
            return Err(PbocError::Format {
                what: "GPO format 1 shorter than the AIP",
            });
        }
        value.split_at(2)
    } else if object.tag() == tags::RESPONSE_FORMAT_2 {
        let children = object.children();
        let aip = tlv::find_value(children, tags::AIP)
            .ok_or(PbocError::MissingData { tag: tags::AIP })?;
        (
            aip,
            tlv::find_value(children, tags::AFL).unwrap_or_default(),
        )
    } else {
        return Err(PbocError::Format {
            what: "GPO response is neither template 80 nor 77",
        });
    };
    let aip = <[u8; 2]>::try_from(aip).map_err(|_| PbocError::Format {
        what: "AIP is not 2 bytes",
    })?;
    Ok((aip, parse_afl(afl)?))
}

/// Runs GPO with the PDOL filled from `terminal`, then READ RECORD over the AFL, and extracts
/// the application data. The application must already be selected; `fci` is its FCI.
///
/// Errors: [`PbocError`].
pub fn read_selected<T: CardTransport>(
    session: &mut Session<T>,
    aid: &[u8],
    fci: &[u8],
    terminal: &dyn DolSource,
) -> Result<PbocApplication, PbocError> {
    let fci_objects = tlv::parse_all(fci).map_err(|e| PbocError::tlv("application FCI", e))?;
    let pdol = match tlv::find_value(&fci_objects, tags::PDOL) {
        Some(bytes) => Dol::parse(bytes)?,
        None => Dol::default(),
    };
    let label = tlv::find_value(&fci_objects, tags::APPLICATION_LABEL)
        .map(|l| l.iter().map(|b| char::from(*b)).collect());
    let response = session.exchange_ok(&gpo_command(&pdol.fill(terminal))?)?;
    let (aip, afl) = parse_gpo_response(&response)?;

    let mut card_data = CardData::default();
    let mut records_read = 0_usize;
    for entry in &afl {
        for record in entry.records() {
            records_read += 1;
            if records_read > AFL_RECORDS_MAX {
                return Err(PbocError::Format {
                    what: "AFL asks for too many records",
                });
            }
            let command = CommandApdu::new(0x00, 0xB2, record, entry.read_record_p2())
                .with_ne(256)
                .map_err(|e| PbocError::Card(CardError::Transport(e.into())))?;
            let data = session.exchange_ok(&command)?;
            let objects = tlv::parse_all(&data).map_err(|e| PbocError::tlv("record", e))?;
            if entry.sfi <= 10
                && !matches!(objects.as_slice(), [t] if t.tag() == tags::RECORD_TEMPLATE)
            {
                return Err(PbocError::Format {
                    what: "record of SFI 1..=10 is not one template 70",
                });
            }
            card_data.absorb(&objects)?;
        }
    }
    extract(aid.to_vec(), label, pdol, aip, afl, card_data)
}

fn extract(
    aid: Vec<u8>,
    label: Option<String>,
    pdol: Dol,
    aip: [u8; 2],
    afl: Vec<AflEntry>,
    card_data: CardData,
) -> Result<PbocApplication, PbocError> {
    let required = |tag: Tag| card_data.get(tag).ok_or(PbocError::MissingData { tag });
    let pan = crate::ssc::decode_cn(0x5A, required(tags::PAN)?)
        .ok()
        .and_then(|digits| Pan::new(&digits))
        .ok_or(PbocError::PanFormat)?;
    let psn = match card_data.get(tags::PAN_SEQUENCE_NUMBER) {
        None => None,
        Some(value) => Some(bcd_byte(value).ok_or(PbocError::Format {
            what: "PAN sequence number is not one BCD byte",
        })?),
    };
    let expiry = required(tags::EXPIRY)?;
    let expiry = match expiry {
        [yy, mm, dd] => match (bcd_byte(&[*yy]), bcd_byte(&[*mm]), bcd_byte(&[*dd])) {
            (Some(yy), Some(mm), Some(dd)) => CardDate::new(2000 + u16::from(yy), mm, dd),
            _ => None,
        },
        _ => None,
    }
    .ok_or(PbocError::Format {
        what: "expiry date is not a YYMMDD date",
    })?;
    let cardholder_name = match card_data.get(tags::CARDHOLDER_NAME) {
        None => None,
        Some(bytes) => {
            let name = crate::ssc::decode_gbk(0x20, bytes).map_err(|_| PbocError::Gbk {
                tag: tags::CARDHOLDER_NAME,
            })?;
            Some(PersonName::new(name.trim_end_matches(' ')))
        }
    };
    let id_number = match card_data.get(tags::CARDHOLDER_ID) {
        None => None,
        Some(bytes) => Some(Sensitive(crate::ssc::decode_an(0x61, bytes).map_err(
            |_| PbocError::Format {
                what: "cardholder ID number is not ASCII",
            },
        )?)),
    };
    let id_type = match card_data.get(tags::CARDHOLDER_ID_TYPE) {
        None => None,
        Some([t]) => Some(*t),
        Some(_) => {
            return Err(PbocError::Format {
                what: "cardholder ID type is not one byte",
            });
        }
    };
    Ok(PbocApplication {
        aid,
        label,
        pdol,
        aip,
        afl,
        pan,
        psn,
        expiry,
        cardholder_name,
        track2: card_data.get(tags::TRACK2).map(|t| Sensitive(t.to_vec())),
        cdol1: Dol::parse(required(tags::CDOL1)?)?,
        cdol2: Dol::parse(required(tags::CDOL2)?)?,
        id_number,
        id_type,
        card_data,
    })
}

/// One BCD byte (two digits) as a number.
fn bcd_byte(value: &[u8]) -> Option<u8> {
    match value {
        [b] if b >> 4 <= 9 && b & 0x0F <= 9 => Some((b >> 4) * 10 + (b & 0x0F)),
        _ => None,
    }
}
