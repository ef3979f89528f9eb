//! The terminal UI of `tracer follow` (live) and `tracer replay FILE` (a recording).
//!
//! # Mechanism
//!
//! Three parts, as tokio-console splits its console (STYLE.md item 9):
//!
//! - [`state`] is pure: no terminal, no clock of its own. [`state::State::apply`] takes
//!   each [`UiEvent`], [`state::State::handle`] each user [`state::Action`], and
//!   [`state::State::tick`] the time that has passed. It holds the journeys (bounded: the
//!   newest [`state::DEFAULT_RETENTION`]), which of them are shown (filter, pause, playback),
//!   the selection and the focus. Everything the user sees is derived from it, so it is
//!   tested without a terminal.
//! - [`view`] draws a `State` into a ratatui frame, one file per pane. Views never change
//!   state; they are snapshot-tested on ratatui's `TestBackend`.
//! - [`input`] maps a key to an [`state::Action`] (pure), and [`event_loop`] is the one loop
//!   that ties them together on a std thread: drain the channel without blocking, advance
//!   the clock, draw at most [`event_loop::FRAME`] apart (30 fps), and wait for keys until
//!   the next frame is due. Journeys never trigger a draw by themselves, so a burst of
//!   thousands costs one frame.
//!
//! # Live and replay
//!
//! Live: journeys are shown as they arrive; space freezes the list while ingest goes on
//! (the header counts what arrived meanwhile). Replay: the UI owns a playback clock over
//! the journeys' `start_ns` ([`state::playback`]); a journey is shown once the clock has
//! passed its start, at 0.25× to 64× speed, with seeking and stepping. The recording is
//! read ahead of the clock only so far ([`state::READ_AHEAD`]), which bounds memory for a
//! large file and lets the first screen appear before the file is read to its end; give
//! the reader a bounded `std::sync::mpsc::sync_channel` so that it waits meanwhile.
//! Dropping the sender counts as [`UiEvent::SourceEnded`].
//!
//! # Terminal
//!
//! [`terminal::TerminalGuard`] enters raw mode and the alternate screen and restores them
//! exactly once: when dropped (so `run` leaves the terminal usable on return and on
//! error), or from a panic hook before the panic message is printed. `NO_COLOR`
//! (non-empty) turns colours off; meaning stays in symbols (`✓ ✗ ? ~ ●`) and
//! bold/dim/reverse.

pub mod event_loop;
#[cfg(test)]
mod fixtures;
pub mod input;
pub mod state;
pub mod terminal;
#[cfg(test)]
mod tests;
pub mod view;

use std::path::PathBuf;

pub use event_loop::{run, run_with_retention};

use crate::journey::model::Journey;

/// Whether the events come from the kernel now or from a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    Replay,
}

/// What the header says about the session; fixed for the whole run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// What is followed, e.g. `nettest (default, 10.244.102.137, cpu2) → svc/nginx-test
    /// (10.109.60.89, 3 endpoints)`.
    pub following: String,
    pub mode: Mode,
    /// The file this session is being recorded to, if any.
    pub recording: Option<PathBuf>,
    /// Where names come from, e.g. `Kubernetes API (kubeconfig ~/.kube/config)` or
    /// `recording foo.trace`.
    pub source: String,
}

/// What the sources send to the UI, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UiEvent {
    /// One complete journey.
    Journey(Box<Journey>),
    /// What the session skipped so far: **running totals** since the start (each replaces
    /// the previous one), not increments.
    Counters(crate::pipeline::Counters),
    /// Something the user must see, e.g. `recording: disk full, recording stopped`; the
    /// newest stays in the header.
    Notice(String),
    /// The session traces one packet in `2^shift` and counts the others: the flow view
    /// gives each path its count.
    Sampling(u8),
    /// A sampling session's newest counts (running totals per place that changed), read at
    /// `at_ns`: a replay shows them once its clock has passed that time.
    HopCounts {
        at_ns: u64,
        counts: std::sync::Arc<crate::journey::counted::HopCounts>,
    },
    /// Replay: the whole file has been read. Live: the kernel side stopped. A closed channel
    /// means the same.
    SourceEnded,
}
