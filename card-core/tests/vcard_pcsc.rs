//! End to end through the real PC/SC stack: the `ssc-vcard` binary plugs a card image into pcscd
//! via vsmartcard's vpcd, then Debian's `scriptor` and the `pcsc` crate talk to it as to any card
//! in the reader "Virtual PCD 00 00".
//!
//! Needs pcscd with the vpcd driver (scripts/ensure-pcsc installs and starts it; scripts/check
//! runs it first). Without it these tests FAIL with a message saying so: they never pass silently.
//! All steps share vpcd's one slot, so they run in one test function, one card at a time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::CString;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use card_core::{CardTransport, CommandApdu, Session, StatusWord, TransportError};

const READER: &str = "Virtual PCD 00 00";
/// Bound on waiting for pcscd to report the card after the binary starts (pcscd polls vpcd
/// about every 400 ms: limits.md §4).
const CARD_WAIT_MS: u64 = 10_000;
const SELECT_SSSE: &str = "00A404000F7378312E73682EC9E7BBE1B1A3D5CF";

fn h(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

fn image(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/cards")
        .join(name)
}

/// The running `ssc-vcard`; killed when dropped so a failing test never leaves a card behind.
struct VirtualCardProcess(Child);

impl Drop for VirtualCardProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// pcsc-lite must be up with the vpcd reader; otherwise fail loudly with the fix.
fn pcsc_context() -> pcsc::Context {
    let hint = "pcscd with the vsmartcard vpcd driver is needed: run scripts/ensure-pcsc \
                (as root it installs pcscd, vsmartcard-vpcd, pcsc-tools and starts pcscd)";
    let ctx = pcsc::Context::establish(pcsc::Scope::User)
        .unwrap_or_else(|e| panic!("cannot reach pcscd ({e}); {hint}"));
    let mut buf = [0u8; 2048];
    let readers: Vec<String> = ctx
        .list_readers(&mut buf)
        .unwrap_or_else(|e| panic!("pcscd lists no readers ({e}); {hint}"))
        .map(|r| r.to_string_lossy().into_owned())
        .collect();
    assert!(
        readers.iter().any(|r| r == READER),
        "reader {READER:?} not found (readers: {readers:?}); {hint}"
    );
    ctx
}

/// Starts the binary on `image_name` and waits (bounded) until pcscd lets us connect to it.
fn insert(ctx: &pcsc::Context, image_name: &str) -> (VirtualCardProcess, pcsc::Card) {
    let child = Command::new(env!("CARGO_BIN_EXE_ssc-vcard"))
        .args(["--image", image(image_name).to_str().unwrap()])
        .args(["--vpcd", "127.0.0.1:35963"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting ssc-vcard");
    let process = VirtualCardProcess(child);
    let reader = CString::new(READER).unwrap();
    let deadline = Instant::now() + Duration::from_millis(CARD_WAIT_MS);
    loop {
        match ctx.connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY) {
            Ok(card) => return (process, card),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("no card in {READER} {CARD_WAIT_MS} ms after starting ssc-vcard: {e}"),
        }
    }
}

/// Waits (bounded) until pcscd has noticed that the previous card left the reader: pcscd polls
/// vpcd, so a connect right after the card process ends can reach the stale card.
fn wait_removed(ctx: &pcsc::Context) {
    let reader = CString::new(READER).unwrap();
    let mut states = [pcsc::ReaderState::new(reader, pcsc::State::UNAWARE)];
    let deadline = Instant::now() + Duration::from_millis(CARD_WAIT_MS);
    loop {
        ctx.get_status_change(Duration::from_millis(500), &mut states)
            .or_else(|e| {
                if e == pcsc::Error::Timeout {
                    Ok(())
                } else {
                    Err(e)
                }
            })
            .unwrap();
        if !states[0].event_state().contains(pcsc::State::PRESENT) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the card stayed in {READER} after its process ended"
        );
        states[0].sync_current_state();
    }
}

/// The card seam over a PC/SC card handle.
struct PcscTransport(pcsc::Card);

impl CardTransport for PcscTransport {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        let mut buf = [0u8; pcsc::MAX_BUFFER_SIZE];
        self.0
            .transmit(command, &mut buf)
            .map(<[u8]>::to_vec)
            .map_err(|e| TransportError::Reader(e.to_string()))
    }
}

fn exchange_ok(session: &mut Session<PcscTransport>, apdu: &str) -> Vec<u8> {
    let cmd = CommandApdu::parse(&h(apdu)).unwrap();
    let r = session.exchange(&cmd).unwrap();
    assert_eq!(r.sw(), StatusWord::SUCCESS, "APDU {apdu}");
    r.into_data()
}

fn scriptor(apdu: &str) -> String {
    let mut child = Command::new("scriptor")
        .args(["-r", READER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running scriptor (Debian pcsc-tools; scripts/ensure-pcsc installs it)");
    writeln!(child.stdin.take().unwrap(), "{apdu}").unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[test]
fn virtual_card_through_pcscd_vpcd_scriptor_and_the_pcsc_crate() {
    let ctx = pcsc_context();
    // Start from an empty reader (a card left by an earlier run would answer instead of ours).
    wait_removed(&ctx);

    // 1. scriptor sends SELECT SSSE and sees 90 00 (Beijing 2.00 card, answers directly).
    let (process, card) = insert(&ctx, "beijing-2g.toml");
    drop(card);
    let out = scriptor(SELECT_SSSE);
    assert!(out.contains("90 00"), "scriptor output:\n{out}");
    // The FCI (6F 11 84 0F ...) came back before the status.
    assert!(
        out.contains("6F 11 84 0F 73 78 31 2E"),
        "scriptor output:\n{out}"
    );

    // 2. The identity through the pcsc crate: EF05 卡号 and EF06 姓名 + 姓名扩展.
    let reader = CString::new(READER).unwrap();
    let card = ctx
        .connect(&reader, pcsc::ShareMode::Shared, pcsc::Protocols::ANY)
        .unwrap();
    let mut session = Session::new(PcscTransport(card));
    exchange_ok(&mut session, SELECT_SSSE);
    let card_no = exchange_ok(&mut session, "00B2072C0B");
    assert_eq!(&card_no[..2], &[0x07, 0x09]);
    assert_eq!(std::str::from_utf8(&card_no[2..]).unwrap(), "B10020030");
    exchange_ok(&mut session, "00A4020002EF06");
    let name = exchange_ok(&mut session, "00B2090020");
    let ext = exchange_ok(&mut session, "00B24E0016");
    let joined: Vec<u8> = name[2..]
        .iter()
        .chain(&ext[2..])
        .copied()
        .filter(|&b| b != 0)
        .collect();
    assert_eq!(
        encoding_rs::GBK.decode(&joined).0,
        "阿卜杜热合曼·买买提艾力·艾合买提江"
    );

    // 3. Round trip: 300 READ RECORDs. With TCP_QUICKACK re-armed the mean is ~75 µs
    //    (limits.md §4); without it each APDU costs 44 ms. 5 ms fails only the stall.
    let read = h("00B2072C0B");
    let n = 300u32;
    let started = Instant::now();
    for _ in 0..n {
        let answer = session.transport_mut().transmit(&read).unwrap();
        assert!(answer.ends_with(&[0x90, 0x00]));
    }
    let mean = started.elapsed() / n;
    assert!(
        mean < Duration::from_millis(5),
        "mean APDU round trip {mean:?}: TCP_QUICKACK lost?"
    );
    drop(session);
    drop(process);
    wait_removed(&ctx);

    // 4. The strict T=0 card through PC/SC: 61XX and 6CXX are followed by the Session.
    let (process, card) = insert(&ctx, "hebei-3g.toml");
    let mut raw = PcscTransport(card);
    assert_eq!(raw.transmit(&h(SELECT_SSSE)).unwrap(), h("611B"));
    let mut session = Session::new(raw);
    exchange_ok(&mut session, SELECT_SSSE);
    assert_eq!(
        exchange_ok(&mut session, "00B2012C00"),
        h("0110130100D156000005A0B1C2D3E4F50617")
    );
    drop(session);
    drop(process);
    wait_removed(&ctx);
}
