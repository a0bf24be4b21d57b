//! The seam between the scheduling of card work and the reader stack: a [`CardBackend`] opens an
//! exclusive transaction on the card in a named reader and lends a [`CardTransport`] for the
//! duration of one job. Dropping the [`CardLink`] ends the transaction and leaves the card
//! powered (never a reset: pcsc-rust #62, card-hsm-anchors.md §1.1).

use card_core::CardTransport;

use super::ReaderError;

/// The card in a reader, inside an exclusive transaction, for one job.
pub struct CardLink<'a> {
    /// Moves APDUs to the card (no 61XX/6CXX handling: that is `card_core::Session`'s job).
    pub transport: Box<dyn CardTransport + 'a>,
    /// The card's answer to reset.
    pub atr: Vec<u8>,
}

impl std::fmt::Debug for CardLink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardLink")
            .field("atr_len", &self.atr.len())
            .finish_non_exhaustive()
    }
}

/// A reader stack, owned by one worker thread (its calls may block).
pub trait CardBackend {
    /// The names of the attached readers.
    ///
    /// Errors: [`ReaderError::Service`].
    fn readers(&mut self) -> Result<Vec<String>, ReaderError>;

    /// Connects to the card in `reader` (shared mode, T=0 or T=1) if not yet connected, and
    /// begins an exclusive transaction. A card reset by another program is reconnected once.
    ///
    /// Errors: [`ReaderError::UnknownReader`], [`ReaderError::NoCard`],
    /// [`ReaderError::Transport`], [`ReaderError::Service`].
    fn begin(&mut self, reader: &str) -> Result<CardLink<'_>, ReaderError>;
}

/// Makes one backend per worker thread (called on that thread).
pub trait BackendFactory: Send + Sync {
    /// A new backend.
    fn create(&self) -> Box<dyn CardBackend>;
}

impl<F> BackendFactory for F
where
    F: Fn() -> Box<dyn CardBackend> + Send + Sync,
{
    fn create(&self) -> Box<dyn CardBackend> {
        self()
    }
}
