//! A lossy relay between a HIS and its node, for the day's "reply lost" event: it forwards the
//! request to the node, reads the node's whole reply, and drops the connection without passing
//! the reply on. The HIS sees no answer (outcome unknown) although the node settled, which is
//! exactly the case the national interface's 2601 reversal exists for.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{Context, Result, bail};

/// How long the relay waits for the node's reply.
const UPSTREAM_TIMEOUT_MS: u64 = 15_000;
/// Largest request the relay takes, bytes.
const REQUEST_BYTES_MAX: usize = 1 << 20;

/// A relay for ONE request.
pub struct LossyRelay {
    /// Base URL the HIS posts to.
    pub url: String,
    thread: JoinHandle<()>,
    /// The status line the node answered (and the relay swallowed).
    swallowed: Arc<Mutex<Option<String>>>,
}

impl LossyRelay {
    /// Listens on a free loopback port, forwarding to `upstream` (`127.0.0.1:PORT`).
    pub fn start(upstream: &str) -> Result<LossyRelay> {
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the relay")?;
        let url = format!("http://{}", listener.local_addr()?);
        let upstream = upstream.to_owned();
        let swallowed = Arc::new(Mutex::new(None));
        let seen = swallowed.clone();
        let thread = std::thread::spawn(move || {
            if let Ok((client, _)) = listener.accept()
                && let Ok(status) = forward(client, &upstream)
            {
                *seen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(status);
            }
        });
        Ok(LossyRelay {
            url,
            thread,
            swallowed,
        })
    }

    /// Waits for the relay to finish; returns the node's status line it swallowed.
    pub fn finish(self) -> Result<String> {
        let _ = self.thread.join();
        self.swallowed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .context("the relay saw no reply from the node")
    }
}

/// Forwards one HTTP/1.1 request with `connection: close`, reads the reply to its end, returns
/// its status line; the client's connection is then dropped unanswered.
fn forward(client: TcpStream, upstream: &str) -> Result<String> {
    client.set_read_timeout(Some(Duration::from_millis(UPSTREAM_TIMEOUT_MS)))?;
    let mut reader = BufReader::new(client);
    let mut head = Vec::new();
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            bail!("the client closed before its request ended");
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            content_length = value.trim().parse()?;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("connection:") {
            continue;
        }
        if line == "\r\n" {
            head.push("connection: close\r\n".to_owned());
            head.push(line);
            break;
        }
        head.push(line);
        if head.len() > 200 {
            bail!("request head too long");
        }
    }
    if content_length > REQUEST_BYTES_MAX {
        bail!("request too large");
    }
    let mut body = vec![0u8; content_length];
    reader.read_exact(&mut body)?;
    let mut node =
        TcpStream::connect(upstream).with_context(|| format!("connecting {upstream}"))?;
    node.set_read_timeout(Some(Duration::from_millis(UPSTREAM_TIMEOUT_MS)))?;
    node.write_all(head.concat().as_bytes())?;
    node.write_all(&body)?;
    let mut reply = Vec::new();
    node.read_to_end(&mut reply)?;
    let status = String::from_utf8_lossy(&reply)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    drop(reader);
    Ok(status)
}
