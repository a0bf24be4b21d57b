//! One TCP link to an issuer host: 2-byte length frames, many requests in flight, responses
//! matched to requests by (response MTI, STAN, terminal id, transmission date-time) — the jPOS
//! QMUX idea (anchors-switch.md §3.1) with the time in the key so a STAN reused on another day
//! cannot match. A response that matches nothing (late after our timeout, or unknown) is logged
//! loudly and counted, never silently dropped (anchors-switch.md §6(d), jmeter-iso8583 #69).
//! Garbage (a frame that does not unpack) is logged and counted; the request it may have
//! answered then times out. The link reconnects lazily on the next request after a failure.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::oneshot;

use crate::iso8583::{self, MESSAGE_LEN_MAX, Message, Mti};

/// Most requests in flight on one link.
pub const IN_FLIGHT_MAX: usize = 4_096;

/// Why an exchange with the issuer host produced no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// No matching response within the per-hop timeout (the outcome at the issuer is unknown).
    #[error("no answer from the issuer within {timeout_ms} ms")]
    Timeout {
        /// The hop timeout, ms.
        timeout_ms: u64,
    },
    /// Could not connect or write (the request did not leave).
    #[error("issuer host unreachable: {0}")]
    Unreachable(String),
    /// Too many requests in flight.
    #[error("too many requests in flight")]
    Busy,
    /// A request with the same match key is already in flight.
    #[error("a request with the same STAN, terminal and time is in flight")]
    DuplicateKey,
}

/// What identifies a response: (MTI, STAN field 11, terminal field 41, transmission field 7).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MatchKey {
    mti: Mti,
    stan: Vec<u8>,
    terminal: Vec<u8>,
    transmission: Vec<u8>,
}

impl MatchKey {
    /// The key a message carries as is (a response's own key).
    #[must_use]
    pub fn of(message: &Message) -> MatchKey {
        MatchKey {
            mti: message.mti,
            stan: message.get(11).unwrap_or_default().to_vec(),
            terminal: message.get(41).unwrap_or_default().to_vec(),
            transmission: message.get(7).unwrap_or_default().to_vec(),
        }
    }

    /// The key the response to `request` will carry; `None` if it has no response MTI.
    #[must_use]
    pub fn response_to(request: &Message) -> Option<MatchKey> {
        let mut key = MatchKey::of(request);
        key.mti = request.mti.response()?;
        Some(key)
    }
}

type Waiter = oneshot::Sender<(Vec<u8>, Message)>;

/// A link to one bank host.
#[derive(Debug, Clone)]
pub struct BankLink {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    bank: String,
    host: SocketAddr,
    timeout: Duration,
    writer: tokio::sync::Mutex<Option<OwnedWriteHalf>>,
    pending: Mutex<HashMap<MatchKey, Waiter>>,
    unmatched: AtomicU64,
    garbage: AtomicU64,
}

impl BankLink {
    /// A link to `host` for bank `bank` with a per-hop timeout (connects on first use).
    #[must_use]
    pub fn new(bank: &str, host: SocketAddr, timeout_ms: u64) -> BankLink {
        BankLink {
            inner: Arc::new(Inner {
                bank: bank.to_owned(),
                host,
                timeout: Duration::from_millis(timeout_ms),
                writer: tokio::sync::Mutex::new(None),
                pending: Mutex::new(HashMap::new()),
                unmatched: AtomicU64::new(0),
                garbage: AtomicU64::new(0),
            }),
        }
    }

    /// Responses that matched no request (late or unknown), so far.
    #[must_use]
    pub fn unmatched(&self) -> u64 {
        self.inner.unmatched.load(Ordering::Relaxed)
    }

    /// Frames that did not unpack, so far.
    #[must_use]
    pub fn garbage(&self) -> u64 {
        self.inner.garbage.load(Ordering::Relaxed)
    }

    /// Sends `packed` (the request `request`, MAC included) and waits for its response.
    ///
    /// Errors: [`LinkError`].
    pub async fn exchange(
        &self,
        request: &Message,
        packed: &[u8],
    ) -> Result<(Vec<u8>, Message), LinkError> {
        let key = MatchKey::response_to(request).ok_or(LinkError::DuplicateKey)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = lock(&self.inner.pending);
            if pending.len() >= IN_FLIGHT_MAX {
                return Err(LinkError::Busy);
            }
            if pending.contains_key(&key) {
                return Err(LinkError::DuplicateKey);
            }
            pending.insert(key.clone(), tx);
        }
        let sent = tokio::time::timeout(self.inner.timeout, self.send(packed)).await;
        let outcome = match sent {
            Ok(Ok(())) => match tokio::time::timeout(self.inner.timeout, rx).await {
                Ok(Ok(answer)) => Ok(answer),
                _ => Err(LinkError::Timeout {
                    timeout_ms: u64::try_from(self.inner.timeout.as_millis()).unwrap_or(u64::MAX),
                }),
            },
            Ok(Err(e)) => Err(e),
            Err(_) => Err(LinkError::Unreachable(String::from(
                "connect/write timed out",
            ))),
        };
        lock(&self.inner.pending).remove(&key);
        outcome
    }

    async fn send(&self, packed: &[u8]) -> Result<(), LinkError> {
        let framed = iso8583::frame(packed).map_err(|e| LinkError::Unreachable(e.to_string()))?;
        let mut writer = self.inner.writer.lock().await;
        if writer.is_none() {
            let stream = TcpStream::connect(self.inner.host)
                .await
                .map_err(|e| LinkError::Unreachable(e.kind().to_string()))?;
            let _ = stream.set_nodelay(true);
            let (read, write) = stream.into_split();
            tokio::spawn(read_loop(self.inner.clone(), read));
            *writer = Some(write);
        }
        let Some(w) = writer.as_mut() else {
            return Err(LinkError::Unreachable(String::from("no connection")));
        };
        if let Err(e) = w.write_all(&framed).await {
            *writer = None;
            return Err(LinkError::Unreachable(e.kind().to_string()));
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn read_loop(inner: Arc<Inner>, mut read: tokio::net::tcp::OwnedReadHalf) {
    let mut head = [0u8; 2];
    loop {
        if read.read_exact(&mut head).await.is_err() {
            break;
        }
        let len = usize::from(u16::from_be_bytes(head));
        if len > MESSAGE_LEN_MAX {
            tracing::error!(bank = %inner.bank, len, "frame longer than the maximum: dropping the link");
            break;
        }
        let mut body = vec![0u8; len];
        if read.read_exact(&mut body).await.is_err() {
            break;
        }
        let message = match iso8583::unpack(&body) {
            Ok(m) => m,
            Err(e) => {
                inner.garbage.fetch_add(1, Ordering::Relaxed);
                tracing::error!(bank = %inner.bank, len, error = %e, "garbage from the issuer host (does not unpack)");
                continue;
            }
        };
        let key = MatchKey::of(&message);
        let waiter = lock(&inner.pending).remove(&key);
        match waiter {
            Some(tx) => {
                let _ = tx.send((body, message));
            }
            None => {
                inner.unmatched.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    bank = %inner.bank,
                    mti = %message.mti,
                    stan = message.text(11).unwrap_or("-"),
                    terminal = message.text(41).unwrap_or("-"),
                    transmission = message.text(7).unwrap_or("-"),
                    response_code = message.text(39).unwrap_or("-"),
                    "UNMATCHED RESPONSE from issuer: no request in flight with this MTI/STAN/terminal/time (late after timeout?)"
                );
            }
        }
    }
    // The connection is gone: the next request reconnects.
    if let Ok(mut w) = inner.writer.try_lock() {
        *w = None;
    }
}
