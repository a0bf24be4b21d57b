//! The platform's processes, started from their own binaries as an operator would start them,
//! and stopped (SIGINT first, then SIGKILL) when the demo ends, fails or is interrupted.
//!
//! Every child is registered in one table; Ctrl-C (SIGINT) or SIGTERM to `ssc-demo` runs
//! [`stop_all`] from the `ctrlc` handler thread, so no child outlives the demo. Every child also
//! carries [`RUN_MARKER_ENV`] in its environment, which lets a test find any orphan.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long a service may take to answer its health check after start.
pub const SERVICE_START_TIMEOUT_MS: u64 = 30_000;
/// How long a stopping process gets before it is killed.
const STOP_GRACE_MS: u64 = 5_000;
/// Environment variable set on every child: the demo's data directory (a test looks for it in
/// `/proc/*/environ` to prove that no child is left behind).
pub const RUN_MARKER_ENV: &str = "SSC_DEMO_RUN";

/// The pids of the running children, by name.
static CHILDREN: Mutex<Vec<(&'static str, u32)>> = Mutex::new(Vec::new());

fn children() -> std::sync::MutexGuard<'static, Vec<(&'static str, u32)>> {
    CHILDREN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A child process that is stopped when dropped.
pub struct Proc {
    name: &'static str,
    child: Child,
}

/// Where children's environment marker points (set once by `main`).
static MARKER: Mutex<String> = Mutex::new(String::new());

/// Sets the value of [`RUN_MARKER_ENV`] for every child started afterwards.
pub fn set_run_marker(value: &str) {
    *MARKER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = value.to_owned();
}

impl Proc {
    /// Starts `program` with `args` and `envs`; its stdout and stderr go to `log`.
    pub fn spawn(
        name: &'static str,
        program: &Path,
        args: &[&str],
        envs: &[(&str, &str)],
        log: &Path,
    ) -> Result<Self> {
        let log_file =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file);
        Self::spawn_command(name, command, envs)
    }

    /// Starts a prepared `command` (stdio already chosen) with `envs` and the run marker.
    pub fn spawn_command(
        name: &'static str,
        mut command: Command,
        envs: &[(&str, &str)],
    ) -> Result<Self> {
        if crate::stopping() {
            bail!("interrupted");
        }
        for (key, value) in envs {
            command.env(key, value);
        }
        let marker = MARKER
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        command.env(RUN_MARKER_ENV, marker);
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        children().push((name, child.id()));
        Ok(Self { name, child })
    }

    /// Starts `binary` from `bin_dir` (see [`Proc::spawn`]).
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
        Self::spawn(name, &path, args, envs, log)
    }

    /// The child's pid.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The child itself (for its pipes).
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Fails if the process has already exited.
    pub fn check_running(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early ({status}); see its log", self.name);
        }
        Ok(())
    }

    /// Stops the process: SIGINT (so it can finish cleanly), then SIGKILL after a grace period.
    pub fn stop(&mut self) {
        let pid = self.child.id();
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            signal(pid, Signal::SIGINT);
            let deadline = Instant::now() + Duration::from_millis(STOP_GRACE_MS);
            let mut exited = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    exited = true;
                    break;
                }
                sleep(Duration::from_millis(20));
            }
            if !exited {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        children().retain(|(_, p)| *p != pid);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal(pid: u32, signal: Signal) {
    if let Ok(pid) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

/// True while `pid` exists and is not a zombie (read from `/proc/PID/stat`).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z")
    })
}

/// Stops every registered child (SIGINT, then SIGKILL after the grace period) and returns the
/// names of those that had to be killed. Used by the Ctrl-C handler, which cannot reach the
/// `Proc` values themselves; zombies left behind are reaped by init when the demo exits.
pub fn stop_all() -> Vec<&'static str> {
    let list: Vec<(&'static str, u32)> = children().clone();
    for (_, pid) in &list {
        signal(*pid, Signal::SIGINT);
    }
    let deadline = Instant::now() + Duration::from_millis(STOP_GRACE_MS);
    while Instant::now() < deadline && list.iter().any(|(_, pid)| alive(*pid)) {
        sleep(Duration::from_millis(20));
    }
    let mut killed = Vec::new();
    for (name, pid) in &list {
        if alive(*pid) {
            signal(*pid, Signal::SIGKILL);
            killed.push(*name);
        }
    }
    killed
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
        if crate::stopping() {
            bail!("interrupted");
        }
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

/// Runs `binary` from `bin_dir` to completion (an operator command such as `import-persons`);
/// its output goes to `log`. Fails with the log's name if it exits non-zero.
pub fn run_to_end(
    bin_dir: &Path,
    binary: &str,
    args: &[&str],
    envs: &[(&str, &str)],
    log: &Path,
) -> Result<()> {
    let mut proc = Proc::start("operator command", bin_dir, binary, args, envs, log)?;
    let status = proc
        .child_mut()
        .wait()
        .with_context(|| format!("running {binary}"))?;
    let pid = proc.id();
    children().retain(|(_, p)| *p != pid);
    if !status.success() {
        bail!(
            "{binary} {} failed ({status}); see {}",
            args.first().unwrap_or(&""),
            log.display()
        );
    }
    Ok(())
}
