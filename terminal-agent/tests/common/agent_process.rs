//! The agent as its own process (`terminal-agent serve`, the binary of this package), as a
//! kiosk runs it: configured by environment (`TERMINAL_AGENT_*`, `SSC_*`, and
//! `PCSCLITE_CSOCK_NAME` for a private pcscd, [`super::pcscd`]), logging to a file, stopped by
//! a crash (SIGKILL) or by Ctrl-C (SIGINT).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long the agent may take to answer HTTP after it was started.
pub const AGENT_START_MS: u64 = 15_000;

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `terminal-agent serve`; killed when dropped.
#[derive(Debug)]
pub struct AgentProcess {
    child: Option<Child>,
    pub base: String,
    pub log: PathBuf,
}

impl AgentProcess {
    /// Starts `terminal-agent serve` on a free loopback port with `envs` (on top of this
    /// process's environment, `RUST_LOG=info` unless given), its stderr appended to `log`, and
    /// waits (bounded) until it answers `GET /v1/readers`.
    pub async fn start(envs: &[(&str, String)], log: &Path) -> Self {
        Self::start_args(&[], envs, log).await
    }

    /// [`Self::start`] with global arguments before `serve` (`--config FILE`).
    pub async fn start_args(args: &[&str], envs: &[(&str, String)], log: &Path) -> Self {
        let port = free_port();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_terminal-agent"));
        command
            .args(args)
            .arg("serve")
            .env("TERMINAL_AGENT_LISTEN", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        for (key, value) in envs {
            command.env(key, value);
        }
        let child = command.spawn().expect("starting terminal-agent serve");
        let mut agent = Self {
            child: Some(child),
            base: format!("http://127.0.0.1:{port}"),
            log: log.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_millis(AGENT_START_MS);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/v1/readers", agent.base)).await
                && r.status().is_success()
            {
                return agent;
            }
            if let Some(status) = agent.child.as_mut().unwrap().try_wait().unwrap() {
                agent.child = None;
                panic!(
                    "terminal-agent exited at start ({status}):\n{}",
                    agent.log_text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "terminal-agent did not answer within {AGENT_START_MS} ms:\n{}",
                agent.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let r = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    /// The reader list as (name, card_present) pairs, sorted by name.
    pub async fn readers(&self) -> Vec<(String, bool)> {
        let (status, body) = self.get("/v1/readers").await;
        assert_eq!(status, 200, "{body}");
        let mut out: Vec<(String, bool)> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap().to_owned(),
                    r["card_present"].as_bool().unwrap(),
                )
            })
            .collect();
        out.sort();
        out
    }

    /// Waits (bounded by `ms`) until the reader list is exactly `want`.
    pub async fn wait_readers(&self, want: &[(&str, bool)], ms: u64) {
        let want: Vec<(String, bool)> = want.iter().map(|(n, p)| ((*n).to_owned(), *p)).collect();
        let deadline = Instant::now() + Duration::from_millis(ms);
        loop {
            let got = self.readers().await;
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the agent lists {got:?}, wanted {want:?} within {ms} ms; its log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A crash: SIGKILL, no shutdown code runs.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Ctrl-C (SIGINT): the agent stops serving and exits; returns its exit status.
    pub fn interrupt(&mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let sent = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_millis(AGENT_START_MS);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("terminal-agent ignored SIGINT");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `/v1/readers/{name}{suffix}` with the name's spaces escaped.
pub fn reader_url(name: &str, suffix: &str) -> String {
    format!("/v1/readers/{}{suffix}", name.replace(' ', "%20"))
}
