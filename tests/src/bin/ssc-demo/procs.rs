//! The platform's processes, started from their own binaries as an operator would start them,
//! and stopped (SIGINT first, then kill) when the demo ends or fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long a service may take to answer its health check after start.
pub const SERVICE_START_TIMEOUT_MS: u64 = 30_000;
/// How long a stopping process gets before it is killed.
const STOP_GRACE_MS: u64 = 5_000;

/// A child process that is stopped when dropped.
pub struct Proc {
    name: &'static str,
    child: Child,
}

impl Proc {
    /// Starts `binary` from `bin_dir` with `args` and `envs`; its stderr goes to `log`.
    pub fn start(
        name: &'static str,
        bin_dir: &Path,
        binary: &str,
        args: &[&str],
        envs: &[(&str, &str)],
        log: &Path,
    ) -> Result<Self> {
        let path = bin_dir.join(binary);
        if !path.exists() {
            bail!(
                "{} is missing: build it first (scripts/run does: cargo build --release)",
                path.display()
            );
        }
        let log_file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = Command::new(&path);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        for (key, value) in envs {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", path.display()))?;
        Ok(Self { name, child })
    }

    /// Fails if the process has already exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early ({status}); see its log", self.name);
        }
        Ok(())
    }

    /// Stops the process: SIGINT (so it can finish cleanly), then kill after a grace period.
    pub fn stop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill")
            .args(["-INT", &pid])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_millis(STOP_GRACE_MS);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A free TCP port on 127.0.0.1 (bound and released; the OS does not hand it out again at once).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Polls `url` until it answers 2xx, the process dies, or the timeout passes.
pub fn wait_healthy(proc: &mut Proc, url: &str) -> Result<()> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(1_000))
        .build()?;
    let deadline = Instant::now() + Duration::from_millis(SERVICE_START_TIMEOUT_MS);
    while Instant::now() < deadline {
        proc.check_running()?;
        if client
            .get(url)
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        sleep(Duration::from_millis(50));
    }
    bail!("{url} did not answer within {SERVICE_START_TIMEOUT_MS} ms")
}

/// True when something listens on 127.0.0.1:`port`, read from /proc/net/tcp without connecting
/// (a connection to vpcd would look like a card coming and going).
pub fn listening_on(port: u16) -> bool {
    let needle = format!(":{port:04X} ");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        std::fs::read_to_string(table).is_ok_and(|text| {
            text.lines().skip(1).any(|line| {
                line.split_whitespace()
                    .nth(1)
                    .is_some_and(|local| format!("{local} ").contains(&needle))
                    && line.split_whitespace().nth(3) == Some("0A")
            })
        })
    })
}

/// The directory holding the platform's binaries: the one this binary runs from.
pub fn bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating ssc-demo")?;
    exe.parent()
        .map(Path::to_path_buf)
        .context("ssc-demo has no parent directory")
}
