//! The reader watcher: a thread blocked in `SCardGetStatusChange` (with a timeout, so it notices
//! a stop request and a dead pcscd) over every reader plus the `\\?PnP?\Notification`
//! pseudo-reader, which changes when a reader is plugged in or out. It keeps a snapshot of the
//! readers and publishes [`ReaderEvent`]s on a bounded broadcast channel (slow subscribers lose
//! the oldest events, they never block the watcher).
//!
//! pcscd polls vpcd about every 400 ms, so an insertion is seen 0-400 ms after the card
//! connects (limits.md §4); a USB reader's card-detect switch is faster.
//!
//! pcscd not running (SCARD_E_NO_SERVICE) or gone (its context invalid): the watcher reports no
//! readers (a `reader_removed` for each one it knew) and establishes a new context, waiting
//! `poll_ms` between attempts, doubling up to [`SERVICE_RETRY_MAX_MS`]; readers that appear once
//! pcscd is back are announced with `reader_added` (tests/reader_hotplug.rs).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pcsc::{Context, ReaderState, Scope, State};
use serde::Serialize;
use tokio::sync::broadcast;

use super::ReaderInfo;

/// Events kept for slow subscribers before the oldest are dropped.
pub const EVENTS_BUFFERED_MAX: usize = 64;
/// Readers watched at once.
pub const WATCHED_READERS_MAX: usize = 32;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReaderEventKind {
    /// A reader was plugged in.
    ReaderAdded,
    /// A reader was unplugged.
    ReaderRemoved,
    /// A card was inserted (and powered by the reader).
    CardInserted,
    /// The card was taken out.
    CardRemoved,
}

/// A reader or card event, as sent on `GET /v1/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReaderEvent {
    /// What happened.
    pub kind: ReaderEventKind,
    /// The reader's name.
    pub reader: String,
    /// The card's ATR (upper-case hex) for `card_inserted`.
    pub atr: Option<String>,
    /// When the watcher saw it, milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

/// The readers the watcher knows, with the ATR of the card in each (if any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReaderSnapshot {
    readers: BTreeMap<String, Option<Vec<u8>>>,
}

impl ReaderSnapshot {
    /// True if the reader is attached.
    pub fn has_reader(&self, name: &str) -> bool {
        self.readers.contains_key(name)
    }

    /// The ATR of the card in `name`, if one is present.
    pub fn card_atr(&self, name: &str) -> Option<&[u8]> {
        self.readers.get(name).and_then(|a| a.as_deref())
    }

    /// The readers, sorted by name.
    pub fn readers(&self) -> Vec<ReaderInfo> {
        self.readers
            .iter()
            .map(|(name, atr)| ReaderInfo {
                name: name.clone(),
                card_present: atr.is_some(),
                atr: atr.as_ref().map(hex::encode_upper),
            })
            .collect()
    }
}

/// The watcher's shared state and event channel; stops its thread when dropped.
pub struct Watcher {
    snapshot: Arc<RwLock<ReaderSnapshot>>,
    events: broadcast::Sender<ReaderEvent>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").finish_non_exhaustive()
    }
}

impl Watcher {
    /// A watcher without a thread: events come from [`Self::apply`] (virtual readers, tests).
    pub fn detached() -> Self {
        let (events, _) = broadcast::channel(EVENTS_BUFFERED_MAX);
        Self {
            snapshot: Arc::new(RwLock::new(ReaderSnapshot::default())),
            events,
            stop: Arc::new(AtomicBool::new(false)),
            thread: None,
        }
    }

    /// Starts the PC/SC watcher thread; each `SCardGetStatusChange` waits at most `poll_ms`.
    ///
    /// Errors: the thread could not be spawned.
    pub fn start_pcsc(poll_ms: u64) -> std::io::Result<Self> {
        let mut watcher = Self::detached();
        let shared = watcher.shared();
        let stop = Arc::clone(&watcher.stop);
        let thread = std::thread::Builder::new()
            .name("reader-watcher".into())
            .spawn(move || watch(&shared, &stop, poll_ms))?;
        watcher.thread = Some(thread);
        Ok(watcher)
    }

    fn shared(&self) -> Shared {
        Shared {
            snapshot: Arc::clone(&self.snapshot),
            events: self.events.clone(),
        }
    }

    /// The current view of the readers.
    pub fn snapshot(&self) -> ReaderSnapshot {
        self.snapshot.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// A receiver of the events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ReaderEvent> {
        self.events.subscribe()
    }

    /// Records `event` in the snapshot and publishes it.
    pub fn apply(&self, event: ReaderEvent) {
        self.shared().apply(event, true);
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            // The thread wakes within one poll period.
            let _ = thread.join();
        }
    }
}

#[derive(Clone)]
struct Shared {
    snapshot: Arc<RwLock<ReaderSnapshot>>,
    events: broadcast::Sender<ReaderEvent>,
}

impl Shared {
    fn apply(&self, event: ReaderEvent, publish: bool) {
        if let Ok(mut snapshot) = self.snapshot.write() {
            let atr = event.atr.as_deref().and_then(|a| hex::decode(a).ok());
            match event.kind {
                ReaderEventKind::ReaderAdded => {
                    snapshot.readers.entry(event.reader.clone()).or_insert(None);
                }
                ReaderEventKind::ReaderRemoved => {
                    snapshot.readers.remove(&event.reader);
                }
                ReaderEventKind::CardInserted => {
                    snapshot
                        .readers
                        .insert(event.reader.clone(), Some(atr.unwrap_or_default()));
                }
                ReaderEventKind::CardRemoved => {
                    if let Some(slot) = snapshot.readers.get_mut(&event.reader) {
                        *slot = None;
                    }
                }
            }
        }
        if publish {
            tracing::info!(kind = ?event.kind, reader = %event.reader, "reader event");
            // No subscriber is not an error.
            let _ = self.events.send(event);
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn event(kind: ReaderEventKind, reader: &str, atr: Option<&[u8]>) -> ReaderEvent {
    ReaderEvent {
        kind,
        reader: reader.to_owned(),
        atr: atr.map(hex::encode_upper),
        at_unix_ms: now_ms(),
    }
}

/// One watched reader: its pcsc state and whether its first state has been seen.
struct Watched {
    state: ReaderState,
    /// Readers present when the watcher started report their first state quietly.
    quiet_first: bool,
    seen: bool,
}

/// Whether `e` means the PC/SC service (pcscd) is gone or the context died with it: the
/// context must be established again (card-hsm-anchors.md §1.1).
pub(crate) fn service_lost(e: pcsc::Error) -> bool {
    matches!(
        e,
        pcsc::Error::NoService
            | pcsc::Error::ServiceStopped
            | pcsc::Error::InvalidHandle
            | pcsc::Error::CommError
    )
}

/// Longest wait between two attempts to reach a pcscd that is not running.
pub const SERVICE_RETRY_MAX_MS: u64 = 2_000;

/// Sleeps `ms` in slices of at most `slice` so that a stop request is seen within one slice.
fn sleep_unless_stopped(ms: u64, slice: Duration, stop: &AtomicBool) {
    let deadline = std::time::Instant::now() + Duration::from_millis(ms);
    while !stop.load(Ordering::SeqCst) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(slice));
    }
}

fn watch(shared: &Shared, stop: &AtomicBool, poll_ms: u64) {
    let poll = Duration::from_millis(poll_ms);
    let mut context: Option<Context> = None;
    let mut pnp = ReaderState::new(pcsc::PNP_NOTIFICATION(), State::UNAWARE);
    let mut watched: Vec<Watched> = Vec::new();
    let mut refresh = true;
    // Readers listed at the first contact with pcscd are the baseline (no events); once the
    // agent has run (a listing made, or pcscd found absent), every reader that appears is news.
    let mut started = false;
    // The wait before the next attempt to reach pcscd: doubles from `poll_ms` up to
    // SERVICE_RETRY_MAX_MS while the service stays away.
    let mut retry_ms = poll_ms;
    while !stop.load(Ordering::SeqCst) {
        let Some(ctx) = context.as_ref() else {
            match Context::establish(Scope::User) {
                Ok(c) => {
                    tracing::info!("pcscd reached: PC/SC context established");
                    context = Some(c);
                    refresh = true;
                    retry_ms = poll_ms;
                    pnp = ReaderState::new(pcsc::PNP_NOTIFICATION(), State::UNAWARE);
                }
                Err(e) => {
                    if retry_ms == poll_ms {
                        tracing::warn!(error = %e, "pcscd not reachable; retrying with a bounded backoff");
                    } else {
                        tracing::debug!(error = %e, retry_ms, "pcscd still not reachable");
                    }
                    // No service, no readers.
                    sync_readers(shared, &mut watched, &[], started);
                    started = true;
                    sleep_unless_stopped(retry_ms, poll, stop);
                    retry_ms = retry_ms
                        .saturating_mul(2)
                        .min(SERVICE_RETRY_MAX_MS.max(poll_ms));
                }
            }
            continue;
        };
        if refresh {
            match ctx.list_readers_owned() {
                Ok(names) => sync_readers(shared, &mut watched, &names, started),
                Err(pcsc::Error::NoReadersAvailable) => {
                    sync_readers(shared, &mut watched, &[], started)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "listing readers failed; establishing a new context");
                    context = None;
                    sync_readers(shared, &mut watched, &[], started);
                    sleep_unless_stopped(poll_ms, poll, stop);
                    continue;
                }
            }
            refresh = false;
            started = true;
        }
        let mut states: Vec<ReaderState> = Vec::with_capacity(watched.len() + 1);
        states.push(ReaderState::new(
            pcsc::PNP_NOTIFICATION(),
            pnp.event_state(),
        ));
        for w in &watched {
            states.push(ReaderState::new(
                w.state.name().to_owned(),
                w.state.current_state(),
            ));
        }
        match ctx.get_status_change(poll, &mut states) {
            Ok(()) => {}
            Err(pcsc::Error::Timeout) => continue,
            Err(e) if service_lost(e) => {
                tracing::warn!(error = %e, "pcscd went away; its readers are gone");
                context = None;
                sync_readers(shared, &mut watched, &[], started);
                continue;
            }
            Err(e) => {
                tracing::debug!(error = %e, "status change failed; listing readers again");
                refresh = true;
                sleep_unless_stopped(poll_ms, poll, stop);
                continue;
            }
        }
        let mut states = states.into_iter();
        if let Some(p) = states.next() {
            if p.event_state().contains(State::CHANGED) {
                refresh = true;
            }
            pnp = p;
            pnp.sync_current_state();
        }
        for (w, mut s) in watched.iter_mut().zip(states) {
            let event_state = s.event_state();
            if event_state.intersects(State::UNKNOWN | State::UNAVAILABLE) {
                refresh = true;
            }
            if event_state.contains(State::CHANGED) || !w.seen {
                let name = s.name().to_string_lossy().into_owned();
                let present =
                    event_state.contains(State::PRESENT) && !event_state.contains(State::MUTE);
                let had = shared
                    .snapshot
                    .read()
                    .map(|snap| snap.card_atr(&name).is_some())
                    .unwrap_or(false);
                let publish = !w.quiet_first || w.seen;
                if present && (!had || !w.seen) {
                    shared.apply(
                        event(ReaderEventKind::CardInserted, &name, Some(s.atr())),
                        publish,
                    );
                } else if !present && had {
                    shared.apply(event(ReaderEventKind::CardRemoved, &name, None), publish);
                }
                w.seen = true;
            }
            s.sync_current_state();
            w.state = s;
        }
    }
}

fn sync_readers(
    shared: &Shared,
    watched: &mut Vec<Watched>,
    names: &[std::ffi::CString],
    started: bool,
) {
    watched.retain(|w| {
        let keep = names.iter().any(|n| n.as_c_str() == w.state.name());
        if !keep {
            let name = w.state.name().to_string_lossy().into_owned();
            shared.apply(event(ReaderEventKind::CardRemoved, &name, None), false);
            shared.apply(event(ReaderEventKind::ReaderRemoved, &name, None), true);
        }
        keep
    });
    for name in names {
        if watched.len() >= WATCHED_READERS_MAX {
            tracing::warn!(
                readers_max = WATCHED_READERS_MAX,
                "too many readers; ignoring the rest"
            );
            break;
        }
        if watched.iter().any(|w| w.state.name() == name.as_c_str()) {
            continue;
        }
        let text = name.to_string_lossy().into_owned();
        shared.apply(event(ReaderEventKind::ReaderAdded, &text, None), started);
        watched.push(Watched {
            state: ReaderState::new(name.clone(), State::UNAWARE),
            quiet_first: !started,
            seen: false,
        });
    }
}
