//! A fault-injecting HTTP proxy between region nodes: every inter-node request passes through
//! it, and a seeded generator decides what happens to each: forwarded, dropped (the connection
//! closes without an answer: the caller cannot tell whether it arrived), forwarded with the
//! answer dropped, delayed, forwarded twice (duplicate), or held past the caller's timeout and
//! forwarded afterwards (so later messages overtake it: reordering). `cut` closes the listening
//! socket and every open connection (connection refused, as a network partition looks from the
//! caller); `restore` listens again on the same port. With several upstreams it forwards round
//! robin (several processes serving one region).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// Fault rates, per mille of requests, and their timings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Close the connection without forwarding.
    pub drop_pm: u64,
    /// Forward, then close the connection without the answer.
    pub drop_reply_pm: u64,
    /// Forward after a delay of up to `delay_ms_max`.
    pub delay_pm: u64,
    pub delay_ms_max: u64,
    /// Forward twice (the second copy a little later); answer with the first.
    pub duplicate_pm: u64,
    /// Forward after `hold_ms` (longer than the caller's timeout): the caller has given up and
    /// later messages went first.
    pub hold_pm: u64,
    pub hold_ms: u64,
}

/// What the proxy did, for the test's report (and to see that faults happened).
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub forwarded: u64,
    pub dropped: u64,
    pub replies_dropped: u64,
    pub delayed: u64,
    pub duplicated: u64,
    pub held: u64,
}

#[derive(Debug)]
struct Shared {
    upstreams: Vec<String>,
    next: AtomicUsize,
    faults: Mutex<Faults>,
    rng: Mutex<u64>,
    stats: Mutex<Stats>,
    client: reqwest::Client,
}

/// SplitMix64 step.
fn next(state: &Mutex<u64>) -> u64 {
    let mut s = state.lock().unwrap();
    *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Forward,
    Drop,
    DropReply,
    Delay(u64),
    Duplicate,
    Hold(u64),
}

impl Shared {
    fn fate(&self) -> Fate {
        let f = *self.faults.lock().unwrap();
        let roll = next(&self.rng) % 1000;
        let mut edge = 0;
        let mut hit = |pm: u64| {
            edge += pm;
            roll < edge
        };
        if hit(f.drop_pm) {
            Fate::Drop
        } else if hit(f.drop_reply_pm) {
            Fate::DropReply
        } else if hit(f.delay_pm) {
            Fate::Delay(next(&self.rng) % f.delay_ms_max.max(1))
        } else if hit(f.duplicate_pm) {
            Fate::Duplicate
        } else if hit(f.hold_pm) {
            Fate::Hold(f.hold_ms)
        } else {
            Fate::Forward
        }
    }

    fn count(&self, update: impl FnOnce(&mut Stats)) {
        update(&mut self.stats.lock().unwrap());
    }

    async fn forward(
        &self,
        path: &str,
        headers: &hyper::HeaderMap,
        body: &Bytes,
    ) -> Option<Response<Full<Bytes>>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.upstreams.len();
        let mut request = self
            .client
            .post(format!("{}{path}", self.upstreams[i]))
            .body(body.clone());
        for (name, value) in headers {
            if name.as_str().starts_with("x-") || name == "content-type" {
                request = request.header(name.as_str(), value.as_bytes());
            }
        }
        let reply = request.send().await.ok()?;
        let mut response = Response::builder().status(reply.status().as_u16());
        for (name, value) in reply.headers() {
            if name.as_str().starts_with("x-") || name == "content-type" {
                response = response.header(name.as_str(), value.as_bytes());
            }
        }
        let bytes = reply.bytes().await.ok()?;
        self.count(|s| s.forwarded += 1);
        Some(response.body(Full::new(bytes)).unwrap())
    }

    async fn handle(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, std::io::Error> {
        let closed = || std::io::Error::other("closed by the proxy");
        let path = request.uri().path().to_owned();
        let headers = request.headers().clone();
        let body = request
            .into_body()
            .collect()
            .await
            .map_err(|_| closed())?
            .to_bytes();
        match self.fate() {
            Fate::Forward => self
                .forward(&path, &headers, &body)
                .await
                .ok_or_else(closed),
            Fate::Drop => {
                self.count(|s| s.dropped += 1);
                Err(closed())
            }
            Fate::DropReply => {
                self.forward(&path, &headers, &body).await;
                self.count(|s| s.replies_dropped += 1);
                Err(closed())
            }
            Fate::Delay(ms) => {
                self.count(|s| s.delayed += 1);
                tokio::time::sleep(Duration::from_millis(ms)).await;
                self.forward(&path, &headers, &body)
                    .await
                    .ok_or_else(closed)
            }
            Fate::Duplicate => {
                self.count(|s| s.duplicated += 1);
                let again = self.clone();
                let (p, h, b) = (path.clone(), headers.clone(), body.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(next(&again.rng) % 200)).await;
                    again.forward(&p, &h, &b).await;
                });
                self.forward(&path, &headers, &body)
                    .await
                    .ok_or_else(closed)
            }
            Fate::Hold(ms) => {
                self.count(|s| s.held += 1);
                // The caller times out meanwhile; the request still arrives, late.
                let late = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    late.forward(&path, &headers, &body).await;
                });
                tokio::time::sleep(Duration::from_millis(ms + 500)).await;
                Err(closed())
            }
        }
    }
}

/// A running proxy.
pub struct Proxy {
    pub port: u16,
    shared: Arc<Shared>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| shared.clone().handle(request));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

impl Proxy {
    /// A proxy on a free loopback port toward `upstreams` (base URLs), faults off.
    pub async fn start(upstreams: Vec<String>, seed: u64) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            upstreams,
            next: AtomicUsize::new(0),
            faults: Mutex::new(Faults::default()),
            rng: Mutex::new(seed),
            stats: Mutex::new(Stats::default()),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Proxy {
            port,
            shared,
            accept: Mutex::new(Some(accept)),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.lock().unwrap() = faults;
    }

    pub fn stats(&self) -> Stats {
        *self.shared.stats.lock().unwrap()
    }

    /// Partition: nothing listens on the port any more and open connections are closed.
    pub fn cut(&self) {
        if let Some(task) = self.accept.lock().unwrap().take() {
            task.abort();
        }
    }

    /// Heals a `cut`: listens on the same port again.
    pub async fn restore(&self) {
        let mut listener = None;
        for _ in 0..100 {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        let listener = listener.expect("the proxy's port is free again");
        let task = tokio::spawn(accept_loop(listener, self.shared.clone()));
        *self.accept.lock().unwrap() = Some(task);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}
