//! [`CardBackend`] over in-process virtual cards (`card_core::vcard::VirtualCard`): the same
//! scheduling, sessions and HTTP API without pcscd. Used by the API tests (`tower` oneshot) and
//! for demos; the PC/SC backend is what the daemon runs on a terminal.
//!
//! The reader table is shared: a test inserts and removes cards while the agent runs. A job
//! holds the table's lock for its whole duration, like an exclusive card transaction.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use card_core::vcard::VirtualCard;
use card_core::{CardTransport, TransportError};

use super::ReaderError;
use super::backend::{CardBackend, CardLink};
use super::pcsc_backend::{trace_command, trace_response};

/// Named virtual readers, each empty or holding a card. Cloning shares the table.
#[derive(Clone, Default)]
pub struct VirtualReaders {
    slots: Arc<Mutex<BTreeMap<String, Option<VirtualCard>>>>,
}

impl std::fmt::Debug for VirtualReaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualReaders").finish_non_exhaustive()
    }
}

impl VirtualReaders {
    /// Readers named `names`, all empty.
    pub fn new<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let slots = names.into_iter().map(|n| (n.to_owned(), None)).collect();
        Self {
            slots: Arc::new(Mutex::new(slots)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Option<VirtualCard>>> {
        // A job that panicked cannot leave a card half-changed in a way that matters to a test
        // reader table: recover the guard.
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Puts `card` into `reader` (adding the reader if needed).
    pub fn insert(&self, reader: &str, card: VirtualCard) {
        self.lock().insert(reader.to_owned(), Some(card));
    }

    /// Takes the card out of `reader`.
    pub fn remove(&self, reader: &str) -> Option<VirtualCard> {
        self.lock().get_mut(reader).and_then(Option::take)
    }

    /// A backend over this table (for [`super::Readers`]).
    pub fn backend(&self) -> Box<dyn CardBackend> {
        Box::new(VirtualBackend {
            readers: self.clone(),
        })
    }
}

struct VirtualBackend {
    readers: VirtualReaders,
}

impl CardBackend for VirtualBackend {
    fn readers(&mut self) -> Result<Vec<String>, ReaderError> {
        Ok(self.readers.lock().keys().cloned().collect())
    }

    fn begin(&mut self, reader: &str) -> Result<CardLink<'_>, ReaderError> {
        let mut guard = self.readers.lock();
        let atr = match guard.get_mut(reader) {
            None => return Err(ReaderError::UnknownReader(reader.to_owned())),
            Some(None) => return Err(ReaderError::NoCard),
            // No reset between jobs: like PC/SC's `LeaveCard`, the card keeps its state.
            Some(Some(card)) => card.atr().to_vec(),
        };
        Ok(CardLink {
            transport: Box::new(VirtualTransport {
                guard,
                reader: reader.to_owned(),
            }),
            atr,
        })
    }
}

struct VirtualTransport<'a> {
    guard: MutexGuard<'a, BTreeMap<String, Option<VirtualCard>>>,
    reader: String,
}

impl CardTransport for VirtualTransport<'_> {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        trace_command(command);
        let card = self
            .guard
            .get_mut(&self.reader)
            .and_then(Option::as_mut)
            .ok_or(TransportError::CardAbsent)?;
        let answer = card.process(command);
        trace_response(&answer);
        Ok(answer)
    }
}
