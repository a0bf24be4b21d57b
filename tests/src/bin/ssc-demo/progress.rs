//! Progress on stderr: an `indicatif` bar over the day's events when stderr is a terminal,
//! plain lines otherwise (logs, tests); step and event lines go above the bar.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The demo's progress display.
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A display for `total` units of work.
    pub fn new(total: u64) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} {msg}")
        {
            bar.set_style(style);
        }
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Progress { bar: Some(bar) }
    }

    /// A line above the bar (or on stderr).
    pub fn say(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            // Never panic when stderr is gone (a closed pipe): the demo goes on.
            None => {
                let _ = writeln!(std::io::stderr(), "{line}");
            }
        }
    }

    /// One unit done; `msg` shows beside the bar.
    pub fn step(&self, msg: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(msg.to_owned());
            bar.inc(1);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
