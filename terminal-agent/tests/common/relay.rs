//! A vpcd relay for fault injection: it plays the card towards vpcd (connecting to vpcd's port)
//! and plays vpcd towards a real `ssc-vcard` (which connects to the relay's own port), passing
//! frames through (2-byte big-endian length + payload, card-hsm-anchors.md §2) and counting the
//! APDUs (payloads longer than 1 byte). After `after_apdus` APDUs it injects its fault:
//! - [`Fault::Stall`]: stops answering but keeps both connections open (a card that hangs);
//! - [`Fault::Pull`]: closes both connections (the card is pulled out mid-read);
//! - [`Fault::None`]: never; the relay only records each C-APDU's header (CLA INS P1 P2), the
//!   order in which the card saw the commands.
//!
//! The card side stays the real binary; only the wire is interrupted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Stall,
    Pull,
    None,
}

pub struct Relay {
    pub card_port: u16,
    pub apdus: Arc<AtomicUsize>,
    /// The header (CLA INS P1 P2) of every C-APDU passed to the card, in order.
    pub headers: Arc<Mutex<Vec<[u8; 4]>>>,
    pub faulted: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    /// Listens for the card on an ephemeral port; connects to vpcd at `vpcd_port` once the
    /// card is there.
    pub fn start(vpcd_port: u16, fault: Fault, after_apdus: usize) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let card_port = listener.local_addr().unwrap().port();
        let apdus = Arc::new(AtomicUsize::new(0));
        let faulted = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let headers = Arc::new(Mutex::new(Vec::new()));
        let state = State {
            apdus: Arc::clone(&apdus),
            faulted: Arc::clone(&faulted),
            stop: Arc::clone(&stop),
            headers: Arc::clone(&headers),
        };
        let thread = std::thread::spawn(move || {
            let (card, _) = listener.accept().unwrap();
            let vpcd = TcpStream::connect(("127.0.0.1", vpcd_port)).unwrap();
            card.set_nodelay(true).unwrap();
            vpcd.set_nodelay(true).unwrap();
            relay(vpcd, card, fault, after_apdus, &state);
        });
        Self {
            card_port,
            apdus,
            headers,
            faulted,
            stop,
            thread: Some(thread),
        }
    }
}

impl Relay {
    /// The headers recorded since the last call.
    pub fn take_headers(&self) -> Vec<[u8; 4]> {
        std::mem::take(&mut *self.headers.lock().unwrap())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn read_frame(stream: &mut TcpStream, stop: &AtomicBool) -> Option<Vec<u8>> {
    // vpcd writes the length and the payload separately without TCP_NODELAY: re-arm quick ACK
    // so the payload is not held 40 ms (limits.md §4).
    let _ = socket2::SockRef::from(&*stream).set_tcp_quickack(true);
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut header = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        if stop.load(Ordering::SeqCst) {
            return None;
        }
        match stream.read(&mut header[got..]) {
            Ok(0) => return None,
            Ok(n) => got += n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return None,
        }
    }
    let mut payload = vec![0u8; usize::from(u16::from_be_bytes(header))];
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.read_exact(&mut payload).ok()?;
    Some(payload)
}

fn write_frame(stream: &mut TcpStream, payload: &[u8]) -> Option<()> {
    let len = u16::try_from(payload.len()).ok()?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(payload);
    stream.write_all(&framed).ok()
}

/// What the relay thread shares with the test.
struct State {
    apdus: Arc<AtomicUsize>,
    faulted: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    headers: Arc<Mutex<Vec<[u8; 4]>>>,
}

fn relay(
    mut vpcd: TcpStream,
    mut card: TcpStream,
    fault: Fault,
    after_apdus: usize,
    state: &State,
) {
    let (apdus, faulted, stop, headers) = (
        &*state.apdus,
        &*state.faulted,
        &*state.stop,
        &*state.headers,
    );
    while let Some(request) = read_frame(&mut vpcd, stop) {
        let is_apdu = request.len() != 1;
        if is_apdu {
            let n = apdus.fetch_add(1, Ordering::SeqCst) + 1;
            if let Some(header) = request.get(..4).and_then(|h| <[u8; 4]>::try_from(h).ok()) {
                headers.lock().unwrap().push(header);
            }
            if fault != Fault::None && n > after_apdus {
                faulted.store(true, Ordering::SeqCst);
                match fault {
                    Fault::Pull | Fault::None => break,
                    Fault::Stall => {
                        while !stop.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        break;
                    }
                }
            }
        }
        if write_frame(&mut card, &request).is_none() {
            break;
        }
        // Power off/on/reset (00/01/02) get no reply; get-ATR (04) and APDUs do.
        let expects_reply = is_apdu || request == [0x04];
        if expects_reply {
            let Some(reply) = read_frame(&mut card, stop) else {
                break;
            };
            if write_frame(&mut vpcd, &reply).is_none() {
                break;
            }
        }
    }
    let _ = vpcd.shutdown(Shutdown::Both);
    let _ = card.shutdown(Shutdown::Both);
}
