//! Application selection (EMV 4.4 Book 1 §12; card-hsm-anchors.md §3 step 1): PPSE
//! `2PAY.SYS.DDF01`, then PSE `1PAY.SYS.DDF01` with its directory records, then the terminal's
//! list of AIDs; the candidate with the best priority (tag `87`) wins.

use crate::apdu::CommandApdu;
use crate::sw::StatusWord;
use crate::tlv::{self, Tlv};
use crate::transport::{CardError, CardTransport, Session};

use super::{PbocError, tags};

/// The contactless directory name `2PAY.SYS.DDF01`.
pub const PPSE_NAME: &[u8] = b"2PAY.SYS.DDF01";
/// The contact directory name `1PAY.SYS.DDF01`.
pub const PSE_NAME: &[u8] = b"1PAY.SYS.DDF01";
/// UnionPay debit, credit and quasi-credit AIDs, tried in this order when there is no directory.
pub const UNIONPAY_AIDS: [&[u8]; 3] = [
    b"\xA0\x00\x00\x03\x33\x01\x01\x01",
    b"\xA0\x00\x00\x03\x33\x01\x01\x02",
    b"\xA0\x00\x00\x03\x33\x01\x01\x03",
];
/// Most PSE directory records read (record numbers 1..=this).
pub const PSE_RECORDS_MAX: u8 = 32;
/// Most candidates kept from directories.
pub const CANDIDATES_MAX: usize = 32;

/// One application offered by the card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// AID (tag `4F`, 5..=16 bytes).
    pub aid: Vec<u8>,
    /// Application label (tag `50`), if given.
    pub label: Option<String>,
    /// Priority (tag `87` bits 4-1: 1 highest .. 15 lowest), `None` if absent or 0.
    pub priority: Option<u8>,
}

/// SELECT by DF name, first or only occurrence: `00 A4 04 00 Lc <name> 00`.
pub fn select_by_name_command(name: &[u8]) -> Result<CommandApdu, PbocError> {
    CommandApdu::new(0x00, 0xA4, 0x04, 0x00)
        .with_data(name.to_vec())
        .and_then(|c| c.with_ne(256))
        .map_err(|e| PbocError::Card(CardError::Transport(e.into())))
}

/// SELECT by name; `Ok(None)` when the card answers `6A82` (not found).
pub fn select_by_name<T: CardTransport>(
    session: &mut Session<T>,
    name: &[u8],
) -> Result<Option<Vec<u8>>, PbocError> {
    match session.exchange_ok(&select_by_name_command(name)?) {
        Ok(fci) => Ok(Some(fci)),
        Err(CardError::Status { sw, .. }) if sw == StatusWord::FILE_NOT_FOUND => Ok(None),
        Err(other) => Err(other.into()),
    }
}

/// The candidates in a PPSE FCI: `6F { 84, A5 { BF0C { 61 {4F, 50, 87} ... } } }`.
///
/// Errors: [`PbocError::Tlv`], [`PbocError::Format`].
pub fn ppse_candidates(fci: &[u8]) -> Result<Vec<Candidate>, PbocError> {
    let objects = tlv::parse_all(fci).map_err(|e| PbocError::tlv("PPSE FCI", e))?;
    let Some(directory) = tlv::find(&objects, tags::FCI_ISSUER_DISCRETIONARY) else {
        return Ok(Vec::new());
    };
    directory
        .children()
        .iter()
        .filter(|t| t.tag() == tags::APPLICATION_TEMPLATE)
        .take(CANDIDATES_MAX)
        .map(candidate)
        .collect()
}

/// The SFI of the PSE directory file (tag `88` in the PSE FCI).
///
/// Errors: [`PbocError::Tlv`], [`PbocError::MissingData`], [`PbocError::Format`] unless
/// 1..=30.
pub fn pse_sfi(fci: &[u8]) -> Result<u8, PbocError> {
    let objects = tlv::parse_all(fci).map_err(|e| PbocError::tlv("PSE FCI", e))?;
    let value =
        tlv::find_value(&objects, tags::SFI).ok_or(PbocError::MissingData { tag: tags::SFI })?;
    match value {
        [sfi @ 1..=30] => Ok(*sfi),
        _ => Err(PbocError::Format {
            what: "PSE SFI outside 1..=30",
        }),
    }
}

/// The candidates in one PSE directory record: `70 { 61 {...} 61 {...} }`.
///
/// Errors: [`PbocError::Tlv`], [`PbocError::Format`].
pub fn pse_record_candidates(record: &[u8]) -> Result<Vec<Candidate>, PbocError> {
    let objects = tlv::parse_all(record).map_err(|e| PbocError::tlv("PSE record", e))?;
    let Some(template) = objects.iter().find(|t| t.tag() == tags::RECORD_TEMPLATE) else {
        return Err(PbocError::Format {
            what: "PSE record without template 70",
        });
    };
    template
        .children()
        .iter()
        .filter(|t| t.tag() == tags::APPLICATION_TEMPLATE)
        .map(candidate)
        .collect()
}

fn candidate(template: &Tlv) -> Result<Candidate, PbocError> {
    let children = template.children();
    let aid =
        tlv::find_value(children, tags::AID).ok_or(PbocError::MissingData { tag: tags::AID })?;
    if !(5..=16).contains(&aid.len()) {
        return Err(PbocError::Format {
            what: "AID length outside 5..=16",
        });
    }
    let label = tlv::find_value(children, tags::APPLICATION_LABEL)
        .map(|l| l.iter().map(|b| char::from(*b)).collect::<String>());
    let priority = match tlv::find_value(children, tags::PRIORITY) {
        Some([p]) if p & 0x0F != 0 => Some(p & 0x0F),
        _ => None,
    };
    Ok(Candidate {
        aid: aid.to_vec(),
        label,
        priority,
    })
}

/// Builds the candidate list: PPSE; if absent (`6A82`) or empty, PSE and its records until
/// `6A83`; if absent or empty, each of `terminal_aids` by SELECT. Candidates whose AID does not
/// start with one of `terminal_aids` are dropped (EMV Book 1 §12.3.1 matching with partial
/// selection).
///
/// Errors: [`PbocError`]; an empty list is `Ok(vec![])`.
pub fn find_candidates<T: CardTransport>(
    session: &mut Session<T>,
    terminal_aids: &[&[u8]],
) -> Result<Vec<Candidate>, PbocError> {
    let supported = |c: &Candidate| terminal_aids.iter().any(|a| c.aid.starts_with(a));
    if let Some(fci) = select_by_name(session, PPSE_NAME)? {
        let found: Vec<_> = ppse_candidates(&fci)?
            .into_iter()
            .filter(supported)
            .collect();
        if !found.is_empty() {
            return Ok(found);
        }
    }
    if let Some(fci) = select_by_name(session, PSE_NAME)? {
        let sfi = pse_sfi(&fci)?;
        let mut found = Vec::new();
        for record in 1..=PSE_RECORDS_MAX {
            let command = CommandApdu::new(0x00, 0xB2, record, (sfi << 3) | 0x04)
                .with_ne(256)
                .map_err(|e| PbocError::Card(CardError::Transport(e.into())))?;
            match session.exchange_ok(&command) {
                Ok(data) => found.extend(pse_record_candidates(&data)?),
                Err(CardError::Status { sw, .. }) if sw == StatusWord::RECORD_NOT_FOUND => break,
                Err(other) => return Err(other.into()),
            }
            if found.len() > CANDIDATES_MAX {
                return Err(PbocError::Format {
                    what: "too many directory entries",
                });
            }
        }
        found.retain(supported);
        if !found.is_empty() {
            return Ok(found);
        }
    }
    let mut found = Vec::new();
    for aid in terminal_aids {
        if let Some(fci) = select_by_name(session, aid)? {
            let objects = tlv::parse_all(&fci).map_err(|e| PbocError::tlv("application FCI", e))?;
            let priority = match tlv::find_value(&objects, tags::PRIORITY) {
                Some([p]) if p & 0x0F != 0 => Some(p & 0x0F),
                _ => None,
            };
            let label = tlv::find_value(&objects, tags::APPLICATION_LABEL)
                .map(|l| l.iter().map(|b| char::from(*b)).collect());
            let aid = tlv::find_value(&objects, tags::DF_NAME).unwrap_or(aid);
            found.push(Candidate {
                aid: aid.to_vec(),
                label,
                priority,
            });
        }
    }
    Ok(found)
}

/// The best candidate: lowest priority number first, no priority last, card order among equals.
pub fn choose(candidates: &[Candidate]) -> Option<&Candidate> {
    candidates
        .iter()
        .enumerate()
        .min_by_key(|(index, c)| (c.priority.unwrap_or(16), *index))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.split_whitespace().collect::<String>()).unwrap()
    }

    #[test]
    fn ppse_directory_gives_candidates_and_priority_picks_one() {
        // 6F { 84 "2PAY.SYS.DDF01", A5 { BF0C { 61{4F A000000333010102, 87 02},
        //                                        61{4F A000000333010101, 50 "PBOC DEBIT", 87 01} } } }
        // Lengths computed with a Python TLV helper: t(tag, v) = tag + len(v) + v.
        let fci = h("6F3F 840E 325041592E5359532E4444463031
                     A52D BF0C2A
                       610D 4F08 A000000333010102 8701 02
                       6119 4F08 A000000333010101 500A 50424F43204445424954 8701 01");
        let candidates = ppse_candidates(&fci).unwrap();
        assert_eq!(candidates.len(), 2);
        assert_eq!(candidates[1].label.as_deref(), Some("PBOC DEBIT"));
        let best = choose(&candidates).unwrap();
        assert_eq!(best.aid, h("A000000333010101"));
        assert_eq!(best.priority, Some(1));
    }

    #[test]
    fn no_priority_sorts_last_and_ties_keep_card_order() {
        let c = |aid: u8, priority| Candidate {
            aid: vec![0xA0, 0, 0, 3, aid],
            label: None,
            priority,
        };
        let list = [c(1, None), c(2, Some(3)), c(3, Some(3))];
        assert_eq!(choose(&list).unwrap().aid[4], 2);
        assert_eq!(choose(&[c(1, None), c(2, None)]).unwrap().aid[4], 1);
        assert!(choose(&[]).is_none());
    }

    #[test]
    fn pse_fci_and_records() {
        // 6F { 84 "1PAY.SYS.DDF01", A5 { 88 01 01 } }
        assert_eq!(
            pse_sfi(&h(
                "6F 15 84 0E 315041592E5359532E4444463031 A5 03 88 01 01"
            ))
            .unwrap(),
            1
        );
        assert!(pse_sfi(&h("6F 05 A5 03 88 01 1F")).is_err());
        // Two entries in one record.
        let record = h("70 16 61 09 4F 07 A0000003330101 61 09 4F 07 A0000003330102");
        let found = pse_record_candidates(&record).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[1].aid, h("A0000003330102"));
    }
}
