//! `ssc-vcard`: runs a virtual social security card from a card image and plugs it into the real
//! PC/SC stack through vsmartcard's vpcd driver (pcscd then shows it in "Virtual PCD 00 00").
//!
//! ```text
//! ssc-vcard --image fixtures/cards/tianjin-3g.toml [--vpcd 127.0.0.1:35963]
//! ```
//!
//! The card connects to vpcd (retrying with a bounded backoff until vpcd listens), answers its
//! frames (protocol: `card_core::vcard::vpcd`), and exits cleanly when vpcd closes the
//! connection or on SIGINT. Debian's vpcd 3.3 sends each frame in two writes without
//! TCP_NODELAY, so the card re-arms TCP_QUICKACK before every read; without it every APDU costs
//! about 44 ms instead of 75 µs (limits.md §4). Each APDU is logged at trace level with its header
//! and lengths only (`RUST_LOG=trace`).

use std::hash::BuildHasher;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use socket2::SockRef;

use card_core::vcard::vpcd::{self, VPCD_HEADER_LEN, VpcdRequest};
use card_core::vcard::{CardImage, VirtualCard};

/// Command line.
#[derive(Parser)]
#[command(
    version,
    about = "A virtual social security card for pcscd's vpcd driver"
)]
struct Args {
    /// The card image (TOML, see fixtures/cards/README.md).
    #[arg(long)]
    image: PathBuf,
    /// vpcd's address (host:port). Use 127.0.0.1: vpcd listens on all interfaces.
    #[arg(long, default_value = "127.0.0.1:35963")]
    vpcd: String,
    /// How long to keep retrying the connection while vpcd is not up, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    connect_timeout_ms: u64,
    /// Do not re-arm TCP_QUICKACK before reads (only to measure the 44 ms Nagle/delayed-ACK stall).
    #[arg(long)]
    no_quickack: bool,
}

/// Longest pause between two connection attempts.
const BACKOFF_MAX_MS: u64 = 500;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let text = std::fs::read_to_string(&args.image)
        .with_context(|| format!("reading card image {}", args.image.display()))?;
    let image = CardImage::from_toml_str(&text)
        .with_context(|| format!("loading card image {}", args.image.display()))?;
    let seed = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
    let mut card = VirtualCard::new(image, seed);

    let stop = Arc::new(AtomicBool::new(false));
    let current: Arc<Mutex<Option<TcpStream>>> = Arc::new(Mutex::new(None));
    {
        let (stop, current) = (Arc::clone(&stop), Arc::clone(&current));
        ctrlc::set_handler(move || {
            stop.store(true, Ordering::SeqCst);
            // Wake the blocked read: it returns EOF and the loop ends cleanly.
            if let Ok(guard) = current.lock()
                && let Some(stream) = guard.as_ref()
            {
                let _ = stream.shutdown(Shutdown::Both);
            }
        })
        .context("installing the SIGINT handler")?;
    }

    let Some(stream) = connect(&args.vpcd, args.connect_timeout_ms, &stop)? else {
        tracing::info!("interrupted before vpcd answered");
        return Ok(());
    };
    stream.set_nodelay(true).context("setting TCP_NODELAY")?;
    if let Ok(mut guard) = current.lock() {
        *guard = Some(stream.try_clone().context("cloning the vpcd socket")?);
    }
    tracing::info!(card = card.image().label(), vpcd = %args.vpcd, "card inserted into vpcd");
    serve(&mut card, stream, !args.no_quickack)?;
    tracing::info!("vpcd closed the connection (or SIGINT): card removed");
    Ok(())
}

/// Connects to vpcd, retrying with a doubling backoff (capped at [`BACKOFF_MAX_MS`]) until
/// `timeout_ms` has passed. `None` when interrupted.
fn connect(addr: &str, timeout_ms: u64, stop: &AtomicBool) -> anyhow::Result<Option<TcpStream>> {
    let target = addr
        .to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .with_context(|| format!("{addr} resolves to no address"))?;
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    let mut backoff_ms = 20;
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(None);
        }
        match TcpStream::connect_timeout(&target, Duration::from_millis(1_000)) {
            Ok(stream) => return Ok(Some(stream)),
            Err(e) if Instant::now() >= deadline => {
                bail!(
                    "vpcd at {addr} not reachable after {timeout_ms} ms ({e}); is pcscd with vsmartcard-vpcd running? (scripts/ensure-pcsc)"
                )
            }
            Err(e) => {
                tracing::debug!(error = %e, backoff_ms, "vpcd not up yet, retrying");
                std::thread::sleep(Duration::from_millis(backoff_ms));
                backoff_ms = (backoff_ms * 2).min(BACKOFF_MAX_MS);
            }
        }
    }
}

/// Answers vpcd's frames until it closes the connection.
fn serve(card: &mut VirtualCard, mut stream: TcpStream, quickack: bool) -> anyhow::Result<()> {
    let mut payload = Vec::new();
    loop {
        if quickack {
            // Linux clears quick-ACK mode after a while; re-arm it before each read so the ACK for
            // vpcd's 2-byte length segment goes out at once and Nagle releases the payload.
            SockRef::from(&stream)
                .set_tcp_quickack(true)
                .context("setting TCP_QUICKACK")?;
        }
        let mut header = [0u8; VPCD_HEADER_LEN];
        match stream.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if is_closed(&e) => return Ok(()),
            Err(e) => return Err(e).context("reading a vpcd frame header"),
        }
        payload.resize(vpcd::payload_len(header), 0);
        match stream.read_exact(&mut payload) {
            Ok(()) => {}
            Err(e) if is_closed(&e) => return Ok(()),
            Err(e) => return Err(e).context("reading a vpcd frame"),
        }
        let request = VpcdRequest::from_payload(&payload);
        match request {
            VpcdRequest::Apdu(_) => {}
            other => tracing::debug!(request = ?other, "vpcd control"),
        }
        if let Some(reply) = vpcd::handle(card, request) {
            let framed = vpcd::frame(&reply).context("framing the reply")?;
            match stream.write_all(&framed) {
                Ok(()) => {}
                Err(e) if is_closed(&e) => return Ok(()),
                Err(e) => return Err(e).context("writing a vpcd frame"),
            }
        }
    }
}

fn is_closed(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe
            | ErrorKind::NotConnected
    )
}
