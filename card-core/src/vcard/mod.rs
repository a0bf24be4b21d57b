//! A virtual social security card: answers command APDUs from a [`CardImage`] and keeps the
//! card's state, so that the terminal side can be tested without hardware, in-process through
//! [`crate::transport::Session`] or through the real PC/SC stack via vsmartcard's vpcd
//! (the `ssc-vcard` binary, protocol in [`vpcd`]).
//!
//! What it emulates (sources: ssc-card.md §2–§5, card-hsm-anchors.md §2–§4, the crypto contract
//! `docs/ssc-auth-model.md`):
//! - the SSSE (EF05/EF06, READ RECORD by tag and by SFI), PIN, GET CHALLENGE, INTERNAL and
//!   EXTERNAL AUTHENTICATE ([`ssse`], [`auth`]);
//! - the PBOC debit application behind PSE/PPSE ([`pboc`]);
//! - T=0 transport behaviour (61XX + GET RESPONSE, 6CXX on a wrong Le), because vpcd passes bytes
//!   through.
//!
//! **It never panics on any input**: every byte string gets an answer of at least two bytes that
//! ends in a status word (a proptest in `tests/vcard_robustness.rs` checks this).
//! State: PIN tries, the external-authentication try counter and the ATC survive a reset; the
//! selection, the GET RESPONSE buffer, the challenge and the authentication state do not.

pub mod auth;
pub mod fs;
pub mod image;
pub mod pboc;
pub mod ssse;
pub mod vpcd;

use zeroize::Zeroizing;

use crate::apdu::CommandApdu;
use crate::sw::StatusWord;
use crate::transport::{CardTransport, TransportError};
pub use image::{CardImage, Generation, ImageError};

use fs::{CurrentDf, SsseEf};

/// Most bytes one response (or one GET RESPONSE piece) carries in short form.
const SHORT_RESPONSE_LEN_MAX: usize = 256;

/// How a handler's data is to be delivered under the T=0 rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivery {
    /// A case 2 command (READ RECORD, GET CHALLENGE): the Le must match, else `6CXX`.
    ExactLe,
    /// A case 4 command (SELECT, GPO, GENERATE AC, INTERNAL AUTHENTICATE): in strict T=0 mode,
    /// or when Ne is too small, the data waits for GET RESPONSE behind `61XX`.
    GetResponse,
}

/// A handler's answer before the T=0 rules are applied.
struct Reply {
    data: Vec<u8>,
    sw: StatusWord,
    delivery: Delivery,
}

impl Reply {
    fn status(sw: StatusWord) -> Self {
        Self {
            data: Vec::new(),
            sw,
            delivery: Delivery::GetResponse,
        }
    }

    fn ok(data: Vec<u8>, delivery: Delivery) -> Self {
        Self {
            data,
            sw: StatusWord::SUCCESS,
            delivery,
        }
    }
}

/// State lost on power-off or reset.
#[derive(Default)]
struct Volatile {
    df: CurrentDf,
    ssse_ef: Option<SsseEf>,
    get_response: Vec<u8>,
    challenge: Option<Vec<u8>>,
    external_authenticated: bool,
    pin_verified: bool,
    txn: pboc::Transaction,
}

/// The virtual card. Build it from a validated [`CardImage`]; feed it raw command APDUs with
/// [`VirtualCard::process`] (or use it as a [`CardTransport`]).
pub struct VirtualCard {
    image: CardImage,
    pin: Zeroizing<Vec<u8>>,
    pin_tries_left: u8,
    external_auth_tries_left: u8,
    atc: u16,
    volatile: Volatile,
    rng_state: u64,
}

impl std::fmt::Debug for VirtualCard {
    /// The image label and counters only; never data, keys or the PIN.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualCard")
            .field("image", &self.image)
            .field("pin_tries_left", &self.pin_tries_left)
            .field("atc", &self.atc)
            .finish_non_exhaustive()
    }
}

impl VirtualCard {
    /// A powered card in its reset state. `seed` drives GET CHALLENGE (a splitmix64 stream: a
    /// test card, not a source of cryptographic randomness; the binary seeds it from the OS).
    pub fn new(image: CardImage, seed: u64) -> Self {
        let atc = image.pboc.as_ref().map_or(0, |p| p.atc_start);
        Self {
            pin: image.pin.clone(),
            pin_tries_left: image.pin_tries_left,
            external_auth_tries_left: image.ext_auth_tries_max,
            atc,
            volatile: Volatile::default(),
            rng_state: seed,
            image,
        }
    }

    /// The answer to reset.
    pub fn atr(&self) -> &[u8] {
        self.image.atr()
    }

    /// The image the card runs on.
    pub fn image(&self) -> &CardImage {
        &self.image
    }

    /// Warm or cold reset (and power-off): clears selection, GET RESPONSE data, the challenge and
    /// every authentication state; keeps PIN tries, key tries and the ATC.
    pub fn reset(&mut self) {
        self.volatile = Volatile::default();
    }

    /// PIN tries left (persistent).
    pub fn pin_tries_left(&self) -> u8 {
        self.pin_tries_left
    }

    /// The application transaction counter (persistent; incremented by each first GENERATE AC).
    pub fn atc(&self) -> u16 {
        self.atc
    }

    /// Answers one raw command APDU with `data || SW1 SW2` (at least 2 bytes). Never panics.
    pub fn process(&mut self, command: &[u8]) -> Vec<u8> {
        let (header, out) = match CommandApdu::parse(command) {
            Ok(cmd) => {
                let out = self.process_command(&cmd);
                ([cmd.cla(), cmd.ins(), cmd.p1(), cmd.p2()], out)
            }
            Err(_) => {
                self.volatile.get_response.clear();
                ([0; 4], StatusWord::WRONG_LENGTH.to_bytes().to_vec())
            }
        };
        let sw_at = out.len().saturating_sub(2);
        // Header and lengths only: the data may hold a PIN, a cryptogram or personal data.
        tracing::trace!(
            header = %hex::encode_upper(header),
            command_len = command.len(),
            response_len = sw_at,
            sw = %hex::encode_upper(out.get(sw_at..).unwrap_or_default()),
            "vcard apdu"
        );
        out
    }

    fn process_command(&mut self, cmd: &CommandApdu) -> Vec<u8> {
        if (cmd.cla(), cmd.ins()) == (0x00, 0xC0) {
            return self.get_response(cmd);
        }
        self.volatile.get_response.clear();
        let reply = self.dispatch(cmd);
        self.deliver(cmd, reply)
    }

    fn dispatch(&mut self, cmd: &CommandApdu) -> Reply {
        match (cmd.cla(), cmd.ins()) {
            (0x00, 0xA4) => self.select(cmd),
            (0x00, 0xB2) => match self.volatile.df {
                CurrentDf::Pse | CurrentDf::Ppse | CurrentDf::Pboc => self.pboc_read_record(cmd),
                CurrentDf::Mf | CurrentDf::Ssse => self.ssse_read_record(cmd),
            },
            (0x00, 0x20) => self.verify_pin(cmd),
            (0x80, 0x5E) => self.change_pin(cmd),
            (0x00, 0x84) => self.get_challenge(cmd),
            (0x00, 0x88) => self.internal_authenticate(cmd),
            (0x00, 0x82) => match self.volatile.df {
                CurrentDf::Pboc => self.pboc_external_authenticate(cmd),
                _ => self.ssse_external_authenticate(cmd),
            },
            (0x80, 0xA8) => self.get_processing_options(cmd),
            (0x80, 0xAE) => self.generate_ac(cmd),
            (0x00 | 0x80, 0xA4 | 0xB2 | 0x20 | 0x5E | 0x84 | 0x88 | 0x82 | 0xA8 | 0xAE | 0xC0) => {
                Reply::status(StatusWord::CLA_NOT_SUPPORTED)
            }
            (0x00 | 0x80, _) => Reply::status(StatusWord::INS_NOT_SUPPORTED),
            _ => Reply::status(StatusWord::CLA_NOT_SUPPORTED),
        }
    }

    /// Applies the T=0 rules to a handler's answer (ISO/IEC 7816-3 §10.3, 7816-4 §5.1.3).
    fn deliver(&mut self, cmd: &CommandApdu, reply: Reply) -> Vec<u8> {
        let Reply { data, sw, delivery } = reply;
        if data.is_empty() || !sw.is_success() {
            return with_sw(data, sw);
        }
        let len = data.len();
        let strict = self.image.t0_get_response;
        let fits = |ne: u32| usize::try_from(ne).is_ok_and(|ne| ne >= len);
        match delivery {
            Delivery::ExactLe => {
                let le_ok = match cmd.ne() {
                    // Strict T=0: P3 must equal the length (absent P3 = 00 means 256).
                    _ if strict => {
                        usize::try_from(cmd.ne().unwrap_or(256)).is_ok_and(|ne| ne == len)
                    }
                    None => true,
                    Some(ne) => fits(ne),
                };
                if le_ok {
                    with_sw(data, sw)
                } else {
                    // Record lengths are at most 255 here, but stay total: 6C00 means 256.
                    StatusWord::wrong_le(low_byte(len)).to_bytes().to_vec()
                }
            }
            Delivery::GetResponse => {
                let direct = !strict && cmd.ne().is_none_or(fits) && len <= SHORT_RESPONSE_LEN_MAX;
                if direct {
                    with_sw(data, sw)
                } else {
                    self.volatile.get_response = data;
                    StatusWord::bytes_available(low_byte(len.min(SHORT_RESPONSE_LEN_MAX)))
                        .to_bytes()
                        .to_vec()
                }
            }
        }
    }

    /// GET RESPONSE `00 C0 00 00 XX`: the next piece of the waiting response.
    fn get_response(&mut self, cmd: &CommandApdu) -> Vec<u8> {
        if (cmd.p1(), cmd.p2()) != (0, 0) {
            return StatusWord::INCORRECT_P1_P2.to_bytes().to_vec();
        }
        if !cmd.data().is_empty() {
            return StatusWord::WRONG_LENGTH.to_bytes().to_vec();
        }
        let pending = &mut self.volatile.get_response;
        if pending.is_empty() {
            return StatusWord::CONDITIONS_NOT_SATISFIED.to_bytes().to_vec();
        }
        let ne = usize::try_from(cmd.ne().unwrap_or(256)).unwrap_or(SHORT_RESPONSE_LEN_MAX);
        let take = ne.min(pending.len()).min(SHORT_RESPONSE_LEN_MAX);
        let rest = pending.split_off(take);
        let mut out = std::mem::replace(pending, rest);
        let sw = if pending.is_empty() {
            StatusWord::SUCCESS
        } else {
            StatusWord::bytes_available(low_byte(pending.len().min(SHORT_RESPONSE_LEN_MAX)))
        };
        out.extend_from_slice(&sw.to_bytes());
        out
    }

    /// SELECT (`00 A4`): by DF name (P1 04) or by file id (P1 00, 02).
    fn select(&mut self, cmd: &CommandApdu) -> Reply {
        let want_fci = match cmd.p2() {
            0x00 => true,
            0x0C => false,
            // 02: next occurrence — there is only ever one.
            0x02 => return Reply::status(StatusWord::FILE_NOT_FOUND),
            _ => return Reply::status(StatusWord::INCORRECT_P1_P2),
        };
        let name = cmd.data();
        let reply = match cmd.p1() {
            0x04 => {
                if name.is_empty() || name.len() > 16 {
                    return Reply::status(StatusWord::WRONG_LENGTH);
                }
                if name == fs::SSSE_DF_NAME {
                    self.enter_df(CurrentDf::Ssse);
                    Reply::ok(self.ssse_fci(), Delivery::GetResponse)
                } else {
                    match self.pboc_select(name) {
                        Some(reply) => reply,
                        None => return Reply::status(StatusWord::FILE_NOT_FOUND),
                    }
                }
            }
            p1 @ (0x00 | 0x02) => {
                let [hi, lo] = name else {
                    return Reply::status(StatusWord::WRONG_LENGTH);
                };
                return self.select_fid(p1, u16::from_be_bytes([*hi, *lo]));
            }
            _ => return Reply::status(StatusWord::INCORRECT_P1_P2),
        };
        if want_fci {
            reply
        } else {
            Reply::status(reply.sw)
        }
    }

    /// SELECT by file id: the MF, or EF05/EF06 under the SSSE.
    fn select_fid(&mut self, p1: u8, fid: u16) -> Reply {
        if p1 == 0x00 && fid == fs::MF_FID {
            self.enter_df(CurrentDf::Mf);
            return Reply::status(StatusWord::SUCCESS);
        }
        if self.volatile.df != CurrentDf::Ssse {
            return Reply::status(StatusWord::FILE_NOT_FOUND);
        }
        let ef = if fid == self.image.ef05.fid {
            SsseEf::Ef05
        } else if fid == self.image.ef06.fid {
            SsseEf::Ef06
        } else {
            return Reply::status(StatusWord::FILE_NOT_FOUND);
        };
        self.volatile.ssse_ef = Some(ef);
        Reply::status(StatusWord::SUCCESS)
    }

    /// Makes `df` current; leaving or re-entering a DF drops its security state.
    fn enter_df(&mut self, df: CurrentDf) {
        let v = &mut self.volatile;
        v.df = df;
        v.ssse_ef = None;
        v.external_authenticated = false;
        v.txn = pboc::Transaction::default();
    }

    /// The next `n` bytes of the splitmix64 stream.
    fn random_bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            self.rng_state = self.rng_state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.rng_state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            out.extend_from_slice(&(z ^ (z >> 31)).to_be_bytes());
        }
        out.truncate(n);
        out
    }
}

impl CardTransport for VirtualCard {
    /// Processes the command in-process; never fails.
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        Ok(self.process(command))
    }
}

fn with_sw(mut data: Vec<u8>, sw: StatusWord) -> Vec<u8> {
    data.extend_from_slice(&sw.to_bytes());
    data
}

/// `n mod 256` as a byte (SW2 of 61XX/6CXX, where 00 stands for 256).
fn low_byte(n: usize) -> u8 {
    u8::try_from(n % 256).unwrap_or(0)
}

/// A BER-TLV data object `tag || length || value` with a definite length (ISO/IEC 8825-1 §8.1.3):
/// short form below 128, `81 xx` below 256, `82 xx xx` otherwise. Values here are small (FCIs and
/// records of a few dozen bytes).
pub(crate) fn ber_tlv(tag: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(tag.len() + 3 + value.len());
    out.extend_from_slice(tag);
    let len = value.len();
    if let Ok(short) = u8::try_from(len) {
        if short < 0x80 {
            out.push(short);
        } else {
            out.extend_from_slice(&[0x81, short]);
        }
    } else {
        let two = u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes();
        out.extend_from_slice(&[0x82, two[0], two[1]]);
    }
    out.extend_from_slice(value);
    out
}
