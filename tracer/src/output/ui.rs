//! Journeys into the terminal UI: the sink side of the channel the UI drains each frame.

use std::{
    io,
    sync::Arc,
    sync::mpsc::{SyncSender, TrySendError},
};

use super::{Sink, Summary};
use crate::{
    journey::{counted::HopCounts, model::Journey},
    pipeline::Counters,
    tui::UiEvent,
};

pub struct UiSink {
    tx: SyncSender<UiEvent>,
    /// Replay waits for the UI (it reads ahead only so far); a live session never does.
    wait_for_ui: bool,
    /// Journeys a live session could not hand to a UI that fell behind.
    pub dropped: u64,
}

impl UiSink {
    pub fn live(tx: SyncSender<UiEvent>) -> Self {
        Self {
            tx,
            wait_for_ui: false,
            dropped: 0,
        }
    }

    pub fn replay(tx: SyncSender<UiEvent>) -> Self {
        Self {
            tx,
            wait_for_ui: true,
            dropped: 0,
        }
    }

    fn send(&mut self, event: UiEvent) -> io::Result<()> {
        let closed = || io::Error::new(io::ErrorKind::BrokenPipe, "the UI has closed");
        if self.wait_for_ui {
            return self.tx.send(event).map_err(|_| closed());
        }
        match self.tx.try_send(event) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.dropped += 1;
                Ok(())
            }
            Err(TrySendError::Disconnected(_)) => Err(closed()),
        }
    }
}

impl Sink for UiSink {
    fn journey(&mut self, journey: &Journey) -> io::Result<()> {
        self.send(UiEvent::Journey(Box::new(journey.clone())))
    }

    fn finish(&mut self, summary: &Summary) -> io::Result<()> {
        // The UI may already be gone (the user quit): nothing left to tell.
        let _ = self.tx.send(UiEvent::Counters(summary.counters));
        let _ = self.tx.send(UiEvent::Notice(summary.text()));
        let _ = self.tx.send(UiEvent::SourceEnded);
        Ok(())
    }

    fn counters(&mut self, counters: &Counters) {
        let mut counters = *counters;
        counters.pipeline.ui_dropped = self.dropped;
        let _ = self.tx.try_send(UiEvent::Counters(counters));
    }

    fn dropped(&self) -> u64 {
        self.dropped
    }

    fn sampling(&mut self, shift: u8) {
        // Before any journey, and needed by every one after: waited for.
        let _ = self.tx.send(UiEvent::Sampling(shift));
    }

    fn hop_counts(&mut self, counts: &HopCounts) {
        // Running totals: a newer one replaces one the UI could not take.
        let _ = self
            .tx
            .try_send(UiEvent::HopCounts(Arc::new(counts.clone())));
    }

    fn notice(&mut self, text: &str) {
        let _ = self.tx.try_send(UiEvent::Notice(text.to_owned()));
    }
}
