//! EMV / PBOC data element tags used by the debit read flow (EMV 4.4 Book 3 Annex A; PBOC 3.0
//! JR/T 0025 for 9F61/9F62).

use crate::tlv::Tag;

/// `6F` FCI template.
pub const FCI_TEMPLATE: Tag = Tag::known(0x6F);
/// `84` DF name.
pub const DF_NAME: Tag = Tag::known(0x84);
/// `A5` FCI proprietary template.
pub const FCI_PROPRIETARY: Tag = Tag::known(0xA5);
/// `BF0C` FCI issuer discretionary data (PPSE directory lives here).
pub const FCI_ISSUER_DISCRETIONARY: Tag = Tag::known(0xBF0C);
/// `88` SFI of the directory elementary file (PSE).
pub const SFI: Tag = Tag::known(0x88);
/// `61` application template (one directory entry).
pub const APPLICATION_TEMPLATE: Tag = Tag::known(0x61);
/// `70` READ RECORD response template.
pub const RECORD_TEMPLATE: Tag = Tag::known(0x70);
/// `4F` AID.
pub const AID: Tag = Tag::known(0x4F);
/// `50` application label.
pub const APPLICATION_LABEL: Tag = Tag::known(0x50);
/// `87` application priority indicator.
pub const PRIORITY: Tag = Tag::known(0x87);
/// `9F38` PDOL.
pub const PDOL: Tag = Tag::known(0x9F38);
/// `83` command template (GPO data).
pub const COMMAND_TEMPLATE: Tag = Tag::known(0x83);
/// `80` response message template format 1.
pub const RESPONSE_FORMAT_1: Tag = Tag::known(0x80);
/// `77` response message template format 2.
pub const RESPONSE_FORMAT_2: Tag = Tag::known(0x77);
/// `82` application interchange profile.
pub const AIP: Tag = Tag::known(0x82);
/// `94` application file locator.
pub const AFL: Tag = Tag::known(0x94);
/// `5A` application PAN.
pub const PAN: Tag = Tag::known(0x5A);
/// `5F34` PAN sequence number.
pub const PAN_SEQUENCE_NUMBER: Tag = Tag::known(0x5F34);
/// `5F24` application expiration date (YYMMDD).
pub const EXPIRY: Tag = Tag::known(0x5F24);
/// `5F20` cardholder name (GBK on PBOC cards).
pub const CARDHOLDER_NAME: Tag = Tag::known(0x5F20);
/// `57` track 2 equivalent data.
pub const TRACK2: Tag = Tag::known(0x57);
/// `8C` CDOL1.
pub const CDOL1: Tag = Tag::known(0x8C);
/// `8D` CDOL2.
pub const CDOL2: Tag = Tag::known(0x8D);
/// `9F61` cardholder ID number (PBOC).
pub const CARDHOLDER_ID: Tag = Tag::known(0x9F61);
/// `9F62` cardholder ID type (PBOC).
pub const CARDHOLDER_ID_TYPE: Tag = Tag::known(0x9F62);
/// `9F27` cryptogram information data.
pub const CID: Tag = Tag::known(0x9F27);
/// `9F36` application transaction counter.
pub const ATC: Tag = Tag::known(0x9F36);
/// `9F26` application cryptogram.
pub const AC: Tag = Tag::known(0x9F26);
/// `9F10` issuer application data.
pub const IAD: Tag = Tag::known(0x9F10);

/// Every constant above, for the validity test.
#[cfg(test)]
pub(crate) const ALL: [Tag; 30] = [
    FCI_TEMPLATE,
    DF_NAME,
    FCI_PROPRIETARY,
    FCI_ISSUER_DISCRETIONARY,
    SFI,
    APPLICATION_TEMPLATE,
    RECORD_TEMPLATE,
    AID,
    APPLICATION_LABEL,
    PRIORITY,
    PDOL,
    COMMAND_TEMPLATE,
    RESPONSE_FORMAT_1,
    RESPONSE_FORMAT_2,
    AIP,
    AFL,
    PAN,
    PAN_SEQUENCE_NUMBER,
    EXPIRY,
    CARDHOLDER_NAME,
    TRACK2,
    CDOL1,
    CDOL2,
    CARDHOLDER_ID,
    CARDHOLDER_ID_TYPE,
    CID,
    ATC,
    AC,
    IAD,
    Tag::known(0x9F02),
];

#[cfg(test)]
mod tests {
    #[test]
    fn every_constant_is_a_valid_tag() {
        for tag in super::ALL {
            assert_eq!(crate::tlv::Tag::from_u32(tag.to_u32()), Ok(tag), "{tag}");
        }
    }
}
