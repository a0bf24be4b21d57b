//! A TCP relay between the agent and the settlement switch that can swallow replies: every
//! byte from the agent goes to the switch; while [`HttpRelay::swallow`] is on, a connection
//! whose request bytes contain the trigger (e.g. `"infno":"2207","msgid"`) has everything the
//! switch answers on it dropped, the connection held open: the switch processed the message,
//! the agent never hears back (a timeout after the request left).
//!
//! Also ([`HttpRelay::start_with`]): while [`HttpRelay::cut`] is on, a connection whose request
//! holds the cut trigger is closed without forwarding it (the switch unreachable for that
//! request); an observer, when given, runs each time the trigger passes, **before** the
//! triggering bytes are forwarded (what the agent had on disk when its request left).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Runs when the trigger passes, before it is forwarded.
pub type Observer = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

pub struct HttpRelay {
    pub port: u16,
    /// Swallow replies to requests holding the trigger.
    pub swallow: Arc<AtomicBool>,
    /// Replies swallowed so far (connections muted).
    pub swallowed: Arc<AtomicUsize>,
    /// Close connections holding the cut trigger, unforwarded.
    pub cut: Arc<AtomicBool>,
    /// Requests holding the trigger relayed so far.
    pub seen: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpRelay {
    /// Relays 127.0.0.1:<ephemeral> to 127.0.0.1:`upstream_port`.
    pub async fn start(upstream_port: u16, trigger: &'static [u8]) -> Self {
        Self::start_with(upstream_port, trigger, b"", None).await
    }

    /// [`Self::start`] with a cut trigger (empty: none) and an observer of the trigger.
    pub async fn start_with(
        upstream_port: u16,
        trigger: &'static [u8],
        cut_trigger: &'static [u8],
        observer: Option<Observer>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let swallow = Arc::new(AtomicBool::new(false));
        let swallowed = Arc::new(AtomicUsize::new(0));
        let cut = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(AtomicUsize::new(0));
        let shared = Shared {
            trigger,
            cut_trigger,
            cut: Arc::clone(&cut),
            swallow: Arc::clone(&swallow),
            swallowed: Arc::clone(&swallowed),
            seen: Arc::clone(&seen),
            observer,
        };
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)).await else {
                    continue;
                };
                tokio::spawn(pipe(client, server, shared.clone()));
            }
        });
        Self {
            port,
            swallow,
            swallowed,
            cut,
            seen,
            task,
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

#[derive(Clone)]
struct Shared {
    trigger: &'static [u8],
    cut_trigger: &'static [u8],
    cut: Arc<AtomicBool>,
    swallow: Arc<AtomicBool>,
    swallowed: Arc<AtomicUsize>,
    seen: Arc<AtomicUsize>,
    observer: Option<Observer>,
}

async fn pipe(client: TcpStream, server: TcpStream, shared: Shared) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let muted = Arc::new(AtomicBool::new(false));
    let m = Arc::clone(&muted);
    let upstream = tokio::spawn(async move {
        let trigger = shared.trigger;
        // The trigger is looked for in the last bytes before a read plus the read (a
        // keep-alive connection carries several requests).
        let mut window: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match client_rx.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            window.extend_from_slice(&buf[..n]);
            let cut = shared.cut_trigger;
            if !cut.is_empty()
                && shared.cut.load(Ordering::SeqCst)
                && window.windows(cut.len()).any(|w| w == cut)
            {
                // Not forwarded; closing the switch's side ends the agent's connection too.
                let _ = server_tx.shutdown().await;
                return;
            }
            if window.windows(trigger.len()).any(|w| w == trigger) {
                shared.seen.fetch_add(1, Ordering::SeqCst);
                if let Some(observe) = &shared.observer {
                    observe().await;
                }
                if shared.swallow.load(Ordering::SeqCst) && !m.load(Ordering::SeqCst) {
                    m.store(true, Ordering::SeqCst);
                    shared.swallowed.fetch_add(1, Ordering::SeqCst);
                }
                window.clear();
            }
            let keep = trigger
                .len()
                .max(cut.len())
                .saturating_sub(1)
                .min(window.len());
            window.drain(..window.len() - keep);
            if server_tx.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match server_rx.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if muted.load(Ordering::SeqCst) {
            continue;
        }
        if client_tx.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    // Once muted, keep the agent's side open until it gives up.
    let _ = upstream.await;
}
