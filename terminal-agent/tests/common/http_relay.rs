//! A TCP relay between the agent and the settlement switch that can swallow replies: every
//! byte from the agent goes to the switch; while [`HttpRelay::swallow`] is on, a connection
//! whose request bytes contain the trigger (e.g. `"infno":"2207","msgid"`) has everything the
//! switch answers on it dropped, the connection held open: the switch processed the message,
//! the agent never hears back (a timeout after the request left).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct HttpRelay {
    pub port: u16,
    /// Swallow replies to requests holding the trigger.
    pub swallow: Arc<AtomicBool>,
    /// Replies swallowed so far (connections muted).
    pub swallowed: Arc<AtomicUsize>,
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
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let swallow = Arc::new(AtomicBool::new(false));
        let swallowed = Arc::new(AtomicUsize::new(0));
        let (s, n) = (Arc::clone(&swallow), Arc::clone(&swallowed));
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)).await else {
                    continue;
                };
                tokio::spawn(pipe(
                    client,
                    server,
                    trigger,
                    Arc::clone(&s),
                    Arc::clone(&n),
                ));
            }
        });
        Self {
            port,
            swallow,
            swallowed,
            task,
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

async fn pipe(
    client: TcpStream,
    server: TcpStream,
    trigger: &'static [u8],
    swallow: Arc<AtomicBool>,
    swallowed: Arc<AtomicUsize>,
) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let muted = Arc::new(AtomicBool::new(false));
    let m = Arc::clone(&muted);
    let upstream = tokio::spawn(async move {
        // The trigger is looked for in what arrives after swallowing is switched on: the
        // last bytes before a read plus the read (a keep-alive connection carries earlier
        // requests too).
        let mut window: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match client_rx.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            window.extend_from_slice(&buf[..n]);
            if swallow.load(Ordering::SeqCst)
                && !m.load(Ordering::SeqCst)
                && window.windows(trigger.len()).any(|w| w == trigger)
            {
                m.store(true, Ordering::SeqCst);
                swallowed.fetch_add(1, Ordering::SeqCst);
            }
            let keep = trigger.len().saturating_sub(1).min(window.len());
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
