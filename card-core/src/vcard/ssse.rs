//! The SSSE (社会保障系统环境) side of the virtual card: its FCI and READ RECORD over EF05/EF06,
//! by tag (`00 B2 <tag> 00 <Le>`) and by record number + SFI (`00 B2 <rec#> <(SFI<<3)|4> <Le>`).
//!
//! Record numbers and tags per generation: ssc-card.md §3. A 3.00 card refuses EF06 reads with
//! `6982` until EXTERNAL AUTHENTICATE with key `0A` succeeds (model, not verified against the
//! MOHRSS spec: docs/ssc-auth-model.md).

use crate::sw::StatusWord;

use super::fs::{CurrentDf, Ef, SSSE_DF_NAME, SsseEf};
use super::{Delivery, Generation, Reply, VirtualCard, ber_tlv};

impl VirtualCard {
    /// The SSSE FCI: `6F { 84 <DF name> [A5 { 9F0C 03 86 01 <algorithm id> }] }`. The algorithm
    /// identifier is what 3rd-generation-aware readers look for (ssc-card.md §2); its values'
    /// meanings are not confirmed, so the image states it.
    pub(super) fn ssse_fci(&self) -> Vec<u8> {
        let mut body = ber_tlv(&[0x84], &SSSE_DF_NAME);
        if let Some(id) = self.image.algorithm_id {
            let prop = ber_tlv(&[0x9F, 0x0C], &[0x86, 0x01, id]);
            body.extend(ber_tlv(&[0xA5], &prop));
        }
        ber_tlv(&[0x6F], &body)
    }

    /// READ RECORD while the MF or the SSSE is current.
    pub(super) fn ssse_read_record(&mut self, cmd: &crate::apdu::CommandApdu) -> Reply {
        if !cmd.data().is_empty() {
            return Reply::status(StatusWord::WRONG_LENGTH);
        }
        if self.volatile.df != CurrentDf::Ssse {
            return Reply::status(StatusWord::FILE_NOT_FOUND);
        }
        let (p1, p2) = (cmd.p1(), cmd.p2());
        let by_tag = p2 == 0x00;
        let ef = if by_tag || p2 >> 3 == 0 {
            if !by_tag && p2 & 0x07 != 0x04 {
                return Reply::status(StatusWord::INCORRECT_P1_P2);
            }
            match self.volatile.ssse_ef {
                Some(ef) => ef,
                None => return Reply::status(StatusWord::COMMAND_NOT_ALLOWED),
            }
        } else {
            if p2 & 0x07 != 0x04 {
                return Reply::status(StatusWord::INCORRECT_P1_P2);
            }
            match p2 >> 3 {
                sfi if sfi == self.image.ef05.sfi => SsseEf::Ef05,
                sfi if sfi == self.image.ef06.sfi => SsseEf::Ef06,
                _ => return Reply::status(StatusWord::FILE_NOT_FOUND),
            }
        };
        if !by_tag && p1 == 0 {
            // P1 = 00 with "record number" means the current record: not kept by this card.
            return Reply::status(StatusWord::INCORRECT_P1_P2);
        }
        if ef == SsseEf::Ef06
            && self.image.generation == Generation::V3
            && !self.volatile.external_authenticated
        {
            return Reply::status(StatusWord::SECURITY_STATUS_NOT_SATISFIED);
        }
        let file: &Ef = match ef {
            SsseEf::Ef05 => &self.image.ef05,
            SsseEf::Ef06 => &self.image.ef06,
        };
        let record = if by_tag {
            file.by_tag(p1)
        } else {
            file.by_number(p1)
        };
        match record {
            Some(r) => Reply::ok(r.encoded(), Delivery::ExactLe),
            None => Reply::status(StatusWord::RECORD_NOT_FOUND),
        }
    }
}
