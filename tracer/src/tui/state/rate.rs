//! Journeys per second over the last few seconds, from counts in quarter-second buckets.

use std::{collections::VecDeque, time::Duration};

const BUCKET_MS: u128 = 250;
const WINDOW_BUCKETS: u128 = 20;

#[derive(Debug, Clone, Default)]
pub struct RateMeter {
    /// (bucket number, count), oldest first.
    buckets: VecDeque<(u128, u64)>,
    first: Option<Duration>,
}

impl RateMeter {
    pub fn record(&mut self, now: Duration, n: u64) {
        let bucket = now.as_millis() / BUCKET_MS;
        self.first.get_or_insert(now);
        match self.buckets.back_mut() {
            Some((b, count)) if *b == bucket => *count += n,
            _ => self.buckets.push_back((bucket, n)),
        }
        while self
            .buckets
            .front()
            .is_some_and(|(b, _)| *b + WINDOW_BUCKETS <= bucket)
        {
            self.buckets.pop_front();
        }
    }

    /// Per second over the window (or since the first record, but at least a second).
    pub fn per_second(&self, now: Duration) -> f64 {
        let Some(first) = self.first else {
            return 0.0;
        };
        let bucket = now.as_millis() / BUCKET_MS;
        let total: u64 = self
            .buckets
            .iter()
            .filter(|(b, _)| *b + WINDOW_BUCKETS > bucket)
            .map(|(_, c)| c)
            .sum();
        let window =
            Duration::from_millis(u64::try_from(BUCKET_MS * WINDOW_BUCKETS).unwrap_or(5000));
        let span = now
            .saturating_sub(first)
            .clamp(Duration::from_secs(1), window);
        total as f64 / span.as_secs_f64()
    }
}
