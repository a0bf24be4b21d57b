//! The card's file system: elementary files of `tag | len | value` records, and the selection
//! state (current application and current EF) that SELECT sets and READ RECORD uses.
//!
//! Layout from ssc-card.md §2–§3: MF → SSSE (DDF `sx1.sh.社会保障`) → EF05 (SFI 5), EF06 (SFI 6).
//! The PBOC application's records live in [`super::pboc`]; this module only knows which
//! application is current.

/// One record as stored: a 1-byte tag and its value (already padded to the item's length).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) tag: u8,
    pub(crate) value: Vec<u8>,
}

impl Record {
    pub(crate) fn new(tag: u8, value: Vec<u8>) -> Self {
        Self { tag, value }
    }

    /// `tag | len | value` as READ RECORD returns it (ssc-card.md §3). Values are at most 30
    /// bytes, checked by the image loader, so the length fits one byte.
    pub(crate) fn encoded(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.value.len() + 2);
        out.push(self.tag);
        out.push(u8::try_from(self.value.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(&self.value);
        out
    }
}

/// A linear record EF: file id, short file identifier and records in record-number order.
#[derive(Clone)]
pub(crate) struct Ef {
    pub(crate) fid: u16,
    pub(crate) sfi: u8,
    pub(crate) records: Vec<Record>,
}

impl Ef {
    pub(crate) fn new(fid: u16, sfi: u8, records: Vec<Record>) -> Self {
        Self { fid, sfi, records }
    }

    /// Record by its 1-based number.
    pub(crate) fn by_number(&self, number: u8) -> Option<&Record> {
        usize::from(number)
            .checked_sub(1)
            .and_then(|i| self.records.get(i))
    }

    /// Record by its tag (READ RECORD with P2 = 00: "P1 is a record identifier").
    pub(crate) fn by_tag(&self, tag: u8) -> Option<&Record> {
        self.records.iter().find(|r| r.tag == tag)
    }
}

/// Which application (DF) is current.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum CurrentDf {
    /// The MF (after reset, or after SELECT 3F00).
    #[default]
    Mf,
    /// The social-security system environment.
    Ssse,
    /// The contact payment system environment `1PAY.SYS.DDF01`.
    Pse,
    /// The contactless proximity payment environment `2PAY.SYS.DDF01`.
    Ppse,
    /// The PBOC debit application.
    Pboc,
}

/// Which SSSE elementary file is current (set by SELECT EF, used by READ RECORD by tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SsseEf {
    /// EF05 发卡机构数据文件.
    Ef05,
    /// EF06 持卡人基本信息文件.
    Ef06,
}

/// The SSSE DF name: GBK `sx1.sh.社会保障` (ssc-card.md §0, re-encoded with Python `gbk`).
pub(crate) const SSSE_DF_NAME: [u8; 15] = [
    0x73, 0x78, 0x31, 0x2E, 0x73, 0x68, 0x2E, 0xC9, 0xE7, 0xBB, 0xE1, 0xB1, 0xA3, 0xD5, 0xCF,
];
/// `1PAY.SYS.DDF01` (EMV Book 1 §12.2.2).
pub(crate) const PSE_NAME: &[u8] = b"1PAY.SYS.DDF01";
/// `2PAY.SYS.DDF01` (EMV Book B, PPSE).
pub(crate) const PPSE_NAME: &[u8] = b"2PAY.SYS.DDF01";
/// The MF's file id.
pub(crate) const MF_FID: u16 = 0x3F00;
