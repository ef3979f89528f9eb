//! # One pipeline from observations to journeys
//!
//! Every session — a live `follow`, a `replay` of a recording, an `export` — is the same
//! pipeline:
//!
//! ```text
//!   source ──Input──▶ (recorder) ──Input──▶ Correlator ──Journey──▶ sinks
//! ```
//!
//! - A **source** turns what it reads into [`Input`]s: the live kernel source
//!   (`follow::live`) drains the ring buffer and watches the cluster and the namespaces;
//!   the recording source (`replay`) reads records. Each input says *when* it holds: a
//!   cluster or topology version carries the CLOCK_MONOTONIC time from which it names
//!   packets, and a batch of observations carries the time it was read (`now_ns`), which is
//!   what closes quiet packets.
//! - The **recorder** (`record::writer`) is a tap on the same inputs: a recording is the
//!   sequence of inputs a live session fed its correlator, so replaying it feeds the
//!   correlator the same inputs in the same order.
//! - The [`Correlator`] owns everything between observations and journeys: packet assembly
//!   (`journey::assemble`, by the identity rule of `journey::identity`), the fate of drop
//!   events (`journey::fate`), the explanation memo, and the timelines of cluster names and
//!   topology (versions stamped with their start time and a serial number). Given the same
//!   inputs it produces the same journeys, whether they come from the kernel or from a file:
//!   that is what makes `tracer replay` print exactly what the live session printed.
//! - **Sinks** (`output`: text, JSON, the TUI, the summary) only present journeys.
//!
//! Several sources at once (node agents, merged per-node recordings) are the same pipeline
//! with more than one source: [`source::SourceId`] keeps their namespace cookies apart
//! (cookies are per kernel, so two machines can hand out the same one).
//!
//! Nothing is skipped silently: every stage counts what it skipped, dropped, evicted or
//! could not parse in [`Counters`], and every summary and the UI header show them.

pub mod correlator;
pub mod counters;
#[cfg(test)]
mod drop_hint_tests;
#[cfg(test)]
pub(crate) mod golden_tests;
pub mod input;
#[cfg(test)]
mod lost_beginning_tests;
#[cfg(test)]
mod observed_nat_tests;
pub mod run;
pub mod source;

pub use correlator::{Correlated, Correlator};
pub use counters::Counters;
pub use input::{Input, JourneyFilter, Session};
pub use run::{Flow, Pipeline, Tally};
