//! PIN and key authentication on the virtual card: VERIFY (`00 20`), CHANGE PIN (`80 5E`),
//! GET CHALLENGE (`00 84`), and the SSSE's INTERNAL (`00 88`) and EXTERNAL (`00 82 00 0A`)
//! AUTHENTICATE.
//!
//! PIN format: BCD digits padded with `F` (`00 20 00 00 03 123456`, ssc-card.md §4), or the
//! ISO 9564 format 2 plaintext PIN block with P2 = 80 (EMV Book 3 §6.5.12). A wrong PIN answers
//! `63CX` with X tries left; a blocked PIN `6983`.
//!
//! The 3rd-generation authentication is **our model, not verified against the MOHRSS spec**
//! (docs/ssc-auth-model.md): K_INT and K_EXT = `sm4_diversify(master, last 8 bytes of 卡识别码)`;
//! INTERNAL AUTHENTICATE returns `SM4_K_INT(16 bytes in)`; EXTERNAL AUTHENTICATE expects
//! `SM4_K_EXT(R || 00*8)` over the last (single-use) challenge R; 5 tries, then `6983`.

use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::apdu::CommandApdu;
use crate::sw::StatusWord;

use super::fs::CurrentDf;
use super::image::PIN_DIGITS_MAX;
use super::{Delivery, Reply, VirtualCard};

/// Bytes of the INTERNAL AUTHENTICATE input: 8-byte 过程因子 + 8-byte terminal random.
pub const INTERNAL_AUTH_INPUT_LEN: usize = 16;
/// Bytes of the SSSE EXTERNAL AUTHENTICATE cryptogram (one SM4 block).
pub const EXTERNAL_AUTH_CRYPTOGRAM_LEN: usize = 16;
/// Key id of the RKSSSE external-authentication key (ssc-card.md §4).
pub const RKSSSE_KEY_ID: u8 = 0x0A;
/// Challenge length GET CHALLENGE returns unless 4 bytes are asked for.
pub const CHALLENGE_LEN: usize = 8;

impl VirtualCard {
    /// VERIFY. With no data it reports the tries left (`63CX`), or `9000` once verified.
    pub(super) fn verify_pin(&mut self, cmd: &CommandApdu) -> Reply {
        let format = match (cmd.p1(), cmd.p2()) {
            (0x00, 0x00) => PinFormat::Bcd,
            (0x00, 0x80) => PinFormat::IsoFormat2,
            _ => return Reply::status(StatusWord::INCORRECT_P1_P2),
        };
        if self.pin_tries_left == 0 {
            return Reply::status(StatusWord::AUTH_METHOD_BLOCKED);
        }
        if cmd.data().is_empty() {
            return Reply::status(if self.volatile.pin_verified {
                StatusWord::SUCCESS
            } else {
                StatusWord::verify_failed(self.pin_tries_left)
            });
        }
        let offered = match format {
            PinFormat::Bcd => decode_bcd_pin(cmd.data()),
            PinFormat::IsoFormat2 => decode_format2_pin(cmd.data()),
        };
        let Ok(offered) = offered else {
            return Reply::status(StatusWord::WRONG_LENGTH);
        };
        self.check_pin(&offered)
    }

    /// CHANGE PIN `80 5E 01 00 Lc <old BCD> FF <new BCD>` (SI_3rdCard, ssc-card.md §4).
    pub(super) fn change_pin(&mut self, cmd: &CommandApdu) -> Reply {
        if (cmd.p1(), cmd.p2()) != (0x01, 0x00) {
            return Reply::status(StatusWord::INCORRECT_P1_P2);
        }
        if self.pin_tries_left == 0 {
            return Reply::status(StatusWord::AUTH_METHOD_BLOCKED);
        }
        let data = cmd.data();
        let Some(split) = data.iter().position(|&b| b == 0xFF) else {
            return Reply::status(StatusWord::WRONG_DATA);
        };
        let (old, new) = (&data[..split], &data[split + 1..]);
        let (Ok(old), Ok(new)) = (decode_bcd_pin(old), decode_bcd_pin(new)) else {
            return Reply::status(StatusWord::WRONG_DATA);
        };
        let reply = self.check_pin(&old);
        if reply.sw.is_success() {
            self.pin = new;
        }
        reply
    }

    fn check_pin(&mut self, offered: &[u8]) -> Reply {
        let same_len = offered.len() == self.pin.len();
        if same_len && bool::from(offered.ct_eq(self.pin.as_slice())) {
            self.pin_tries_left = self.image.pin_tries_max;
            self.volatile.pin_verified = true;
            Reply::status(StatusWord::SUCCESS)
        } else {
            self.pin_tries_left = self.pin_tries_left.saturating_sub(1);
            self.volatile.pin_verified = false;
            Reply::status(StatusWord::verify_failed(self.pin_tries_left))
        }
    }

    /// GET CHALLENGE `00 84 00 00 08` (4 or 8 bytes). The challenge is single use.
    pub(super) fn get_challenge(&mut self, cmd: &CommandApdu) -> Reply {
        if (cmd.p1(), cmd.p2()) != (0, 0) {
            return Reply::status(StatusWord::INCORRECT_P1_P2);
        }
        if !cmd.data().is_empty() {
            return Reply::status(StatusWord::WRONG_LENGTH);
        }
        let Some(ne) = cmd.ne() else {
            return Reply::status(StatusWord::WRONG_LENGTH);
        };
        let len = if ne == 4 { 4 } else { CHALLENGE_LEN };
        let challenge = self.random_bytes(len);
        self.volatile.challenge = Some(challenge.clone());
        Reply::ok(challenge, Delivery::ExactLe)
    }

    /// INTERNAL AUTHENTICATE (SSSE, model): `SM4_K_INT(过程因子 || random)`, 16 bytes.
    pub(super) fn internal_authenticate(&mut self, cmd: &CommandApdu) -> Reply {
        if self.volatile.df == CurrentDf::Pboc {
            // No offline data authentication (DDA) in this PBOC application.
            return Reply::status(StatusWord::FUNCTION_NOT_SUPPORTED);
        }
        if self.volatile.df != CurrentDf::Ssse {
            return Reply::status(StatusWord::CONDITIONS_NOT_SATISFIED);
        }
        if (cmd.p1(), cmd.p2()) != (0, 0) {
            return Reply::status(StatusWord::INCORRECT_P1_P2);
        }
        if cmd.data().len() != INTERNAL_AUTH_INPUT_LEN {
            return Reply::status(StatusWord::WRONG_LENGTH);
        }
        let Some(keys) = &self.image.ssse_keys else {
            return Reply::status(StatusWord::REFERENCED_DATA_NOT_FOUND);
        };
        let key = Zeroizing::new(hsm::sm::sm4_diversify(
            &keys.internal_auth_master,
            &self.diversification_factor(),
        ));
        match hsm::sm::sm4_encrypt_ecb(&key, cmd.data()) {
            Ok(answer) => Reply::ok(answer, Delivery::GetResponse),
            Err(_) => Reply::status(StatusWord::NO_PRECISE_DIAGNOSIS),
        }
    }

    /// EXTERNAL AUTHENTICATE with RKSSSE `00 82 00 0A 10 <SM4_K_EXT(R || 00*8)>` (model).
    pub(super) fn ssse_external_authenticate(&mut self, cmd: &CommandApdu) -> Reply {
        if self.volatile.df != CurrentDf::Ssse {
            return Reply::status(StatusWord::CONDITIONS_NOT_SATISFIED);
        }
        if cmd.p1() != 0x00 {
            return Reply::status(StatusWord::INCORRECT_P1_P2);
        }
        let Some(keys) = &self.image.ssse_keys else {
            return Reply::status(StatusWord::REFERENCED_DATA_NOT_FOUND);
        };
        if cmd.p2() != RKSSSE_KEY_ID {
            return Reply::status(StatusWord::REFERENCED_DATA_NOT_FOUND);
        }
        if cmd.data().len() != EXTERNAL_AUTH_CRYPTOGRAM_LEN {
            return Reply::status(StatusWord::WRONG_LENGTH);
        }
        if self.external_auth_tries_left == 0 {
            return Reply::status(StatusWord::AUTH_METHOD_BLOCKED);
        }
        let Some(challenge) = self.volatile.challenge.take() else {
            return Reply::status(StatusWord::CONDITIONS_NOT_SATISFIED);
        };
        let key = Zeroizing::new(hsm::sm::sm4_diversify(
            &keys.external_auth_master,
            &self.diversification_factor(),
        ));
        let mut block = challenge;
        block.resize(EXTERNAL_AUTH_CRYPTOGRAM_LEN, 0x00);
        let Ok(expected) = hsm::sm::sm4_encrypt_ecb(&key, &block) else {
            return Reply::status(StatusWord::NO_PRECISE_DIAGNOSIS);
        };
        if bool::from(expected.as_slice().ct_eq(cmd.data())) {
            self.external_auth_tries_left = self.image.ext_auth_tries_max;
            self.volatile.external_authenticated = true;
            Reply::status(StatusWord::SUCCESS)
        } else {
            self.external_auth_tries_left = self.external_auth_tries_left.saturating_sub(1);
            self.volatile.external_authenticated = false;
            Reply::status(StatusWord::verify_failed(self.external_auth_tries_left))
        }
    }

    /// The key diversification factor: the last 8 bytes of the 卡识别码 (EF05 tag 01).
    fn diversification_factor(&self) -> [u8; 8] {
        let mut factor = [0u8; 8];
        factor.copy_from_slice(&self.image.card_id[8..]);
        factor
    }
}

#[derive(Clone, Copy)]
enum PinFormat {
    Bcd,
    IsoFormat2,
}

/// Why PIN data could not be decoded (answered as `6700`/`6A80`; never counts as a try).
#[derive(Debug)]
struct PinMalformed;

/// BCD digits left-aligned, padded right with `F` (4..=12 digits).
fn decode_bcd_pin(data: &[u8]) -> Result<Zeroizing<Vec<u8>>, PinMalformed> {
    let mut digits = Zeroizing::new(Vec::with_capacity(PIN_DIGITS_MAX));
    let mut padding = false;
    for nibble in data.iter().flat_map(|b| [b >> 4, b & 0x0F]) {
        match nibble {
            0x0F => padding = true,
            d @ 0..=9 if !padding => digits.push(d),
            _ => return Err(PinMalformed),
        }
    }
    pin_length_ok(digits)
}

/// ISO 9564 format 2: `2N` then N digits, padded with `F` to 8 bytes.
fn decode_format2_pin(data: &[u8]) -> Result<Zeroizing<Vec<u8>>, PinMalformed> {
    let [control, rest @ ..] = data else {
        return Err(PinMalformed);
    };
    if data.len() != 8 || control >> 4 != 0x2 {
        return Err(PinMalformed);
    }
    let n = usize::from(control & 0x0F);
    let nibbles: Vec<u8> = rest.iter().flat_map(|b| [b >> 4, b & 0x0F]).collect();
    let (digits, fill) = nibbles.split_at(n.min(nibbles.len()));
    if !digits.iter().all(|&d| d <= 9) || !fill.iter().all(|&f| f == 0x0F) {
        return Err(PinMalformed);
    }
    pin_length_ok(Zeroizing::new(digits.to_vec()))
}

fn pin_length_ok(digits: Zeroizing<Vec<u8>>) -> Result<Zeroizing<Vec<u8>>, PinMalformed> {
    if (super::image::PIN_DIGITS_MIN..=PIN_DIGITS_MAX).contains(&digits.len()) {
        Ok(digits)
    } else {
        Err(PinMalformed)
    }
}
