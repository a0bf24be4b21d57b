//! A private pcscd for the tests that must control the PC/SC service itself (start it after the
//! agent, stop it, start it again with more readers), leaving the system's pcscd, which other
//! suites share, untouched.
//!
//! Debian 12's pcscd 1.9.9 has its socket path compiled in (`/run/pcscd/pcscd.comm`; only the
//! client library reads `PCSCLITE_CSOCK_NAME`) and refuses to start while the pid file there
//! names a live pcscd. So the private one runs in its own mount namespace (`unshare --mount`,
//! needs root, as `scripts/check` runs) in which `/run/pcscd` is a bind mount of a test
//! directory: its socket and pid file are created there and removed there when it stops; the
//! system's `/run/pcscd` is never written. A client reaches it with
//! `PCSCLITE_CSOCK_NAME=<dir>/run/pcscd.comm` (set on the agent's process only).
//!
//! Its readers are vpcd slots declared in its own reader.conf directory (`-c DIR`): a line
//! `DEVICENAME /dev/null:PORT` makes vpcd listen on PORT for `<FRIENDLYNAME> 00 00` and on PORT+1
//! for `<FRIENDLYNAME> 00 01` (/etc/reader.conf.d/vpcd: 0x8C7B = 35963 and 35964).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long pcscd may take to start or stop.
pub const PCSCD_WAIT_MS: u64 = 10_000;

/// A port P with P and P+1 free on 127.0.0.1 (a vpcd reader line takes both).
pub fn free_vpcd_port() -> u16 {
    for _ in 0..50 {
        let first = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = first.local_addr().unwrap().port();
        if port < u16::MAX && std::net::TcpListener::bind(("0.0.0.0", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two consecutive free ports");
}

/// True when something listens on TCP `port` (the kernel's table; connecting would look to vpcd
/// like a card inserted and pulled, scripts/ensure-pcsc does the same).
pub fn listening(port: u16) -> bool {
    let wanted = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|table| {
        std::fs::read_to_string(table)
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|line| {
                let cols: Vec<&str> = line.split_whitespace().collect();
                cols.len() > 3 && cols[3] == "0A" && cols[1].ends_with(&wanted)
            })
    })
}

/// Where a private pcscd keeps its socket, pid file, reader.conf and log.
#[derive(Debug)]
pub struct PcscdHome {
    dir: tempfile::TempDir,
}

impl PcscdHome {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("run")).unwrap();
        std::fs::create_dir(dir.path().join("conf")).unwrap();
        Self { dir }
    }

    /// The socket path clients give as `PCSCLITE_CSOCK_NAME` (exists only while pcscd runs).
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("run/pcscd.comm")
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("conf")
    }

    /// pcscd's own log (foreground, info level) of every run.
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("pcscd.log")
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// Replaces the reader.conf directory's content with one vpcd line per `(name, port)`.
    fn write_readers(&self, readers: &[(&str, u16)]) {
        for entry in std::fs::read_dir(self.conf()).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
        for (i, (name, port)) in readers.iter().enumerate() {
            let text = format!(
                "FRIENDLYNAME \"{name}\"\nDEVICENAME /dev/null:{port}\n\
                 LIBPATH /usr/lib/pcsc/drivers/serial/libifdvpcd.so\nCHANNELID {port}\n"
            );
            std::fs::write(self.conf().join(format!("reader{i}")), text).unwrap();
        }
    }

    /// Starts pcscd serving `readers` (name, vpcd port) and waits until its socket exists and
    /// each vpcd port listens.
    pub fn start(&self, readers: &[(&str, u16)]) -> PrivatePcscd {
        assert!(
            !self.socket().exists(),
            "a private pcscd already runs on {}",
            self.socket().display()
        );
        assert!(
            Path::new("/run/pcscd").is_dir(),
            "/run/pcscd missing: install and start pcscd first (scripts/ensure-pcsc)"
        );
        self.write_readers(readers);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .unwrap();
        let script = format!(
            "mount --bind '{}' /run/pcscd && exec pcscd --foreground --info -c '{}'",
            self.dir.path().join("run").display(),
            self.conf().display()
        );
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("running unshare (util-linux)");
        let mut pcscd = PrivatePcscd {
            child: Some(child),
            socket: self.socket(),
            log: self.log(),
        };
        let deadline = Instant::now() + Duration::from_millis(PCSCD_WAIT_MS);
        loop {
            if let Some(status) = pcscd.child.as_mut().unwrap().try_wait().unwrap() {
                pcscd.child = None;
                panic!(
                    "the private pcscd exited at once ({status}); it needs root for its mount \
                     namespace. Its log:\n{}",
                    self.log_text()
                );
            }
            let ports_up = readers
                .iter()
                .all(|(_, port)| listening(*port) && listening(port + 1));
            if self.socket().exists() && ports_up {
                return pcscd;
            }
            assert!(
                Instant::now() < deadline,
                "the private pcscd was not ready within {PCSCD_WAIT_MS} ms:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A running private pcscd; stopped (SIGTERM) when dropped.
#[derive(Debug)]
pub struct PrivatePcscd {
    child: Option<Child>,
    socket: PathBuf,
    log: PathBuf,
}

impl PrivatePcscd {
    /// Stops pcscd the way an operator does (SIGTERM) and checks it went cleanly: it exits by
    /// itself within [`PCSCD_WAIT_MS`] and removes its socket.
    pub fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        let pid = child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + Duration::from_millis(PCSCD_WAIT_MS);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the private pcscd ignored SIGTERM for {PCSCD_WAIT_MS} ms");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // pcscd ends through exit() after SIGTERM ("Direct suicide"), never killed by it.
        assert!(
            status.code().is_some(),
            "pcscd died of a signal: {status}; log:\n{}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
        assert!(
            !self.socket.exists(),
            "pcscd left its socket {} behind",
            self.socket.display()
        );
    }
}

impl Drop for PrivatePcscd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_millis(PCSCD_WAIT_MS);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
