//! One agent process per journal file, enforced by the journal's exclusive lock: a second
//! opener is refused with an error naming the file, before it reads or writes anything (so
//! its sweep never mistakes the first agent's in-flight message for a crash's leftover); the
//! lock goes with the holder's close or its process's end, a crash included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::agent_process::{AgentProcess, free_port};
use terminal_agent::journal::store::lock_path;
use terminal_agent::journal::{Journal, JournalError, MessageState};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_opener_is_refused_and_sweeps_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.sqlite");
    let first = Journal::open(&path).await.unwrap();
    // The first agent is sending a query (1101): the row is `sending` until its answer comes.
    let msgid = "H12010100001202611300800000001";
    first
        .record(msgid, "1101", "{}", MessageState::Sending, None)
        .await
        .unwrap();

    let refused = Journal::open(&path).await.unwrap_err();
    match &refused {
        JournalError::InUse { path: p, lock } => {
            assert_eq!(p, &path);
            assert_eq!(lock, &dir.path().join("journal.sqlite.lock"));
        }
        other => panic!("wanted InUse, got {other:?}"),
    }
    let text = refused.to_string();
    assert!(text.contains(path.to_str().unwrap()), "{text}");
    assert!(text.contains("in use by another terminal-agent"), "{text}");

    // The refused opener swept nothing: the row is still `sending` (a sweep marks a message
    // left `sending` unanswered, sweep.rs).
    let row = first.get(msgid).await.unwrap().unwrap();
    assert_eq!(row.state, MessageState::Sending);
    assert_eq!(row.last_error, None);
    // A clone is the same holder, not a second one.
    let clone = first.clone();
    assert!(clone.get(msgid).await.unwrap().is_some());

    // Closed: the next agent opens it, and its sweep does mark the message the first left
    // in doubt (what the refused opener would have done to a live one).
    first.close().await;
    let next = Journal::open(&path).await.unwrap();
    let row = next.get(msgid).await.unwrap().unwrap();
    assert_eq!(row.state, MessageState::Unknown);
    assert_eq!(
        row.last_error.as_deref(),
        Some(terminal_agent::journal::sweep::IN_DOUBT_NOTE)
    );
    next.close().await;
}

#[test]
fn the_lock_file_sits_beside_the_journal() {
    assert_eq!(
        lock_path(std::path::Path::new("/var/lib/agent/journal.sqlite")),
        std::path::Path::new("/var/lib/agent/journal.sqlite.lock")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_process_on_the_same_journal_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A switch URL makes `serve` open its journal (nothing listens there: no message is sent).
    let envs = [
        ("TERMINAL_AGENT_DATA_DIR", data.to_str().unwrap().to_owned()),
        (
            "TERMINAL_AGENT_SWITCH_URL",
            format!("http://127.0.0.1:{}", free_port()),
        ),
    ];
    let mut first = AgentProcess::start(&envs, &dir.path().join("first.log")).await;

    // The second agent on the same data_dir exits at once, naming the journal file.
    let second_log = dir.path().join("second.log");
    let mut second = Command::new(env!("CARGO_BIN_EXE_terminal-agent"))
        .arg("serve")
        .env(
            "TERMINAL_AGENT_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&second_log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = second.kill();
            let _ = second.wait();
            panic!("the second agent kept running on a journal in use");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "{status}");
    let stderr = std::fs::read_to_string(&second_log).unwrap();
    let journal = data.join("journal.sqlite");
    assert!(stderr.contains(journal.to_str().unwrap()), "{stderr}");
    assert!(
        stderr.contains("in use by another terminal-agent"),
        "{stderr}"
    );

    // The first agent is undisturbed.
    let (status, _) = first.get("/v1/readers").await;
    assert_eq!(status, 200);

    // It crashes: its process's end releases the lock, and a new agent starts on the journal.
    first.kill();
    let third = AgentProcess::start(&envs, &dir.path().join("third.log")).await;
    let (status, _) = third.get("/v1/readers").await;
    assert_eq!(status, 200);
    drop(third);
}
