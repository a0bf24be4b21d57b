//! A scripted card for flow tests: a list of recorded (command → response) pairs in hex. Each
//! transmit must match the next recorded command exactly, or the test fails naming both.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::collections::VecDeque;

use card_core::{CardTransport, Session, TransportError};

/// Hex to bytes, ignoring all whitespace.
pub fn h(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).unwrap()
}

/// Replays recorded exchanges in order.
pub struct ScriptedCard {
    steps: VecDeque<(Vec<u8>, Vec<u8>)>,
    step: usize,
}

impl ScriptedCard {
    /// `steps`: (command hex, response hex incl. SW1-SW2).
    pub fn new(steps: &[(&str, &str)]) -> Self {
        Self {
            steps: steps.iter().map(|(c, r)| (h(c), h(r))).collect(),
            step: 0,
        }
    }

    /// Panics unless every recorded exchange was used.
    pub fn assert_finished(&self) {
        assert!(
            self.steps.is_empty(),
            "{} recorded exchanges left; next expected command {}",
            self.steps.len(),
            hex::encode_upper(&self.steps[0].0)
        );
    }
}

impl CardTransport for ScriptedCard {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        self.step += 1;
        let Some((expected, response)) = self.steps.pop_front() else {
            panic!(
                "step {}: unexpected command {} after the end of the script",
                self.step,
                hex::encode_upper(command)
            );
        };
        assert_eq!(
            hex::encode_upper(command),
            hex::encode_upper(&expected),
            "step {}: command differs from the recording",
            self.step
        );
        Ok(response)
    }
}

/// A session over a script.
pub fn session(steps: &[(&str, &str)]) -> Session<ScriptedCard> {
    Session::new(ScriptedCard::new(steps))
}
