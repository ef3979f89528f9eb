//! The kernel programs' own diagnostics (`follow --kernel-log`): what they met and could
//! not handle — a frame their parser could not read, for example — written with aya-log
//! into its ring buffer and handed to the session as notices, so they are shown, recorded
//! and replayed with the journeys they concern.
//!
//! Off by default, at no cost: the log level is a load-time constant, so with it off the
//! verifier removes every log statement before the programs run.

use std::sync::{Arc, Mutex, PoisonError};

use aya::Ebpf;
use aya_log::EbpfLogger;

/// The log level the kernel programs are loaded with: off, or everything they say.
pub fn level(enabled: bool) -> u8 {
    if enabled {
        aya_log::Level::Trace as u8
    } else {
        0
    }
}

/// Reads the programs' log records into the session's notices.
pub struct KernelLog {
    reader: EbpfLogger<Collect>,
    lines: Arc<Mutex<Vec<String>>>,
}

impl KernelLog {
    /// Takes the programs' log ring buffer; `ebpf` must have been loaded with
    /// [`level`]`(true)`.
    pub fn take(ebpf: &mut Ebpf) -> anyhow::Result<Self> {
        let lines = Arc::default();
        let reader = EbpfLogger::init_with_logger(
            ebpf,
            Collect {
                lines: Arc::clone(&lines),
            },
        )
        .map_err(|e| anyhow::anyhow!("open the kernel programs' log: {e}"))?;
        Ok(Self { reader, lines })
    }

    /// Moves what the programs wrote since the last call into `notices`.
    pub fn drain_into(&mut self, notices: &mut Vec<String>) {
        self.reader.flush();
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        notices.append(&mut lines);
    }
}

/// A [`log::Log`] that keeps each record as one line of text.
struct Collect {
    lines: Arc<Mutex<Vec<String>>>,
}

impl log::Log for Collect {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let line = format!(
            "kernel {}: {}",
            record.level().as_str().to_lowercase(),
            record.args()
        );
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }

    fn flush(&self) {}
}

#[cfg(test)]
mod tests {
    use log::Log as _;

    use super::*;

    #[test]
    fn records_become_one_line_each_with_their_level() {
        let lines = Arc::default();
        let collect = Collect {
            lines: Arc::clone(&lines),
        };
        collect.log(
            &log::Record::builder()
                .level(log::Level::Debug)
                .args(format_args!("ifindex {}: unreadable", 4))
                .build(),
        );
        assert_eq!(
            *lines.lock().unwrap(),
            vec!["kernel debug: ifindex 4: unreadable".to_owned()]
        );
        assert_eq!(level(false), 0);
        assert!(level(true) >= aya_log::Level::Debug as u8);
    }
}
