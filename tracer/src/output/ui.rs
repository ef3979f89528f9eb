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
    /// Live: counts the UI could not take yet, with the newest read's time. Each read
    /// names only the places that changed, so none may be dropped: they are taken in
    /// together and handed on with the next read the UI takes.
    unsent: Option<(u64, HopCounts)>,
}

impl UiSink {
    pub fn live(tx: SyncSender<UiEvent>) -> Self {
        Self {
            tx,
            wait_for_ui: false,
            dropped: 0,
            unsent: None,
        }
    }

    pub fn replay(tx: SyncSender<UiEvent>) -> Self {
        Self {
            tx,
            wait_for_ui: true,
            dropped: 0,
            unsent: None,
        }
    }

    /// Live: hands counts on if the UI has room, else keeps them for the next try.
    fn try_send_counts(&mut self, at_ns: u64, counts: HopCounts) {
        let event = UiEvent::HopCounts {
            at_ns,
            counts: Arc::new(counts),
        };
        if let Err(TrySendError::Full(UiEvent::HopCounts { counts, .. })) = self.tx.try_send(event)
        {
            self.unsent = Some((at_ns, Arc::unwrap_or_clone(counts)));
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
        if let Some((at_ns, counts)) = self.unsent.take() {
            let counts = Arc::new(counts);
            let _ = self.tx.send(UiEvent::HopCounts { at_ns, counts });
        }
        let _ = self.tx.send(UiEvent::Counters(summary.counters));
        let _ = self.tx.send(UiEvent::Notice(summary.text()));
        let _ = self.tx.send(UiEvent::SourceEnded);
        Ok(())
    }

    fn counters(&mut self, counters: &Counters) {
        // Counters come every second, counts only when some changed: counts held back
        // go with them (first: a newer counters replaces one the UI could not take).
        if let Some((at_ns, unsent)) = self.unsent.take() {
            self.try_send_counts(at_ns, unsent);
        }
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

    fn hop_counts(&mut self, at_ns: u64, counts: &HopCounts) {
        if self.wait_for_ui {
            // A replay shows them on its clock, in order with the journeys.
            let counts = Arc::new(counts.clone());
            let _ = self.tx.send(UiEvent::HopCounts { at_ns, counts });
            return;
        }
        let counts = match self.unsent.take() {
            None => counts.clone(),
            Some((_, mut unsent)) => {
                unsent.absorb([counts]);
                unsent
            }
        };
        self.try_send_counts(at_ns, counts);
    }

    fn notice(&mut self, text: &str) {
        let _ = self.tx.try_send(UiEvent::Notice(text.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::journey::counted::fake::read;

    /// A live UI that falls behind gets every place's newest total once it catches up:
    /// each read names only what changed, so none is dropped.
    #[test]
    fn counts_a_busy_live_ui_could_not_take_come_with_the_next_read() {
        let (tx, rx) = mpsc::sync_channel(1);
        let mut sink = UiSink::live(tx);
        sink.notice("fills the channel");
        sink.hop_counts(1, &read(1, 5));
        sink.hop_counts(2, &read(2, 3));
        sink.hop_counts(3, &read(1, 8));
        assert!(matches!(rx.recv(), Ok(UiEvent::Notice(_))));
        sink.hop_counts(4, &read(3, 1));
        let Ok(UiEvent::HopCounts { at_ns, counts }) = rx.recv() else {
            panic!("counts expected");
        };
        assert_eq!(at_ns, 4);
        let mut totals: Vec<_> = counts
            .hops
            .iter()
            .map(|(p, c)| (p.tuple.sport, c.packets))
            .collect();
        totals.sort_unstable();
        assert_eq!(totals, vec![(1, 8), (2, 3), (3, 1)]);
        assert!(rx.try_recv().is_err(), "nothing left unsent");

        // Held back with no newer read to carry them: they go with the next counters.
        sink.notice("fills the channel");
        sink.hop_counts(5, &read(4, 2));
        assert!(matches!(rx.recv(), Ok(UiEvent::Notice(_))));
        sink.counters(&Counters::default());
        let Ok(UiEvent::HopCounts { at_ns: 5, counts }) = rx.recv() else {
            panic!("the held counts expected");
        };
        assert_eq!(counts.hops.len(), 1);
    }
}
