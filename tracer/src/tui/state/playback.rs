//! The replay clock.
//!
//! A recording's journeys carry `start_ns`, CLOCK_MONOTONIC of their first hop on the
//! recording machine. The clock runs in that timebase: it starts at the first journey's
//! start (so the first journey shows at once), advances by the wall time that passed times
//! the speed (0.25× to 64×) while running, and a journey is shown once the clock has passed
//! its start. Seeking moves the clock (±10 s, or to the next/previous journey's start);
//! "to the end" makes every journey due, including those still being read. The clock never
//! seeks before the earliest journey nor past the latest one read so far.

use std::time::Duration;

/// Speeds in quarters: 0.25×, 0.5×, 1×, 2×, … 64×.
const SPEEDS_QUARTERS: [u64; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];
const NORMAL_SPEED: usize = 2;

/// What `]` and `[` move by.
pub const SEEK_NS: u64 = 10_000_000_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Playback {
    /// The clock, in the recording's CLOCK_MONOTONIC nanoseconds; `None` until the first
    /// journey arrives.
    position: Option<u64>,
    speed: usize,
    running: bool,
    /// Everything is due, whatever its start.
    to_end: bool,
    /// Earliest and latest `start_ns` seen.
    earliest: Option<u64>,
    latest: Option<u64>,
}

impl Default for Playback {
    fn default() -> Self {
        Self::new()
    }
}

impl Playback {
    pub fn new() -> Self {
        Self {
            position: None,
            speed: NORMAL_SPEED,
            running: true,
            to_end: false,
            earliest: None,
            latest: None,
        }
    }

    /// Takes note of a journey read from the recording.
    pub fn observe(&mut self, start_ns: u64) {
        self.earliest = Some(self.earliest.map_or(start_ns, |e| e.min(start_ns)));
        self.latest = Some(self.latest.map_or(start_ns, |l| l.max(start_ns)));
        if self.position.is_none() {
            self.position = Some(start_ns);
        }
        if self.to_end {
            self.position = self.latest;
        }
    }

    /// Whether a journey starting at `start_ns` is due.
    pub fn is_due(&self, start_ns: u64) -> bool {
        self.to_end || self.position.is_some_and(|p| start_ns <= p)
    }

    /// Moves the clock on by `elapsed` wall time at the current speed; whether it moved.
    pub fn advance(&mut self, elapsed: Duration) -> bool {
        if !self.running || self.to_end || elapsed.is_zero() {
            return false;
        }
        let Some(position) = self.position else {
            return false;
        };
        let step = elapsed.as_nanos() * u128::from(SPEEDS_QUARTERS[self.speed]) / 4;
        let step = u64::try_from(step).unwrap_or(u64::MAX);
        self.position = Some(position.saturating_add(step));
        true
    }

    /// Stops the clock at the latest journey (the recording is read and all of it shown).
    pub fn settle_at_end(&mut self) {
        if let (Some(p), Some(l)) = (self.position, self.latest)
            && p > l
        {
            self.position = Some(l);
        }
    }

    /// Moves the clock by `delta_ns` (negative: back), within the journeys read so far.
    pub fn seek_by(&mut self, delta_ns: i64) {
        let Some(position) = self.current() else {
            return;
        };
        let target = if delta_ns >= 0 {
            position.saturating_add(delta_ns.unsigned_abs())
        } else {
            position.saturating_sub(delta_ns.unsigned_abs())
        };
        self.seek_to(target);
    }

    /// Puts the clock at `target`, within the journeys read so far.
    pub fn seek_to(&mut self, target: u64) {
        let Some(position) = self.current() else {
            return;
        };
        let ceiling = self.latest.map_or(position, |l| l.max(position));
        let floor = self.earliest.unwrap_or(0);
        self.to_end = false;
        self.position = Some(target.min(ceiling).max(floor));
    }

    /// Makes every journey due, including those not read yet.
    pub fn jump_to_end(&mut self) {
        self.to_end = true;
        if self.latest.is_some() {
            self.position = self.latest;
        }
    }

    /// The clock, with "to the end" meaning the latest journey read.
    pub fn current(&self) -> Option<u64> {
        if self.to_end {
            self.latest.or(self.position)
        } else {
            self.position
        }
    }

    pub fn at_end(&self) -> bool {
        self.to_end
    }

    pub fn running(&self) -> bool {
        self.running
    }

    pub fn set_running(&mut self, running: bool) {
        self.running = running;
    }

    pub fn faster(&mut self) {
        self.speed = (self.speed + 1).min(SPEEDS_QUARTERS.len() - 1);
    }

    pub fn slower(&mut self) {
        self.speed = self.speed.saturating_sub(1);
    }

    /// `0.25×`, `1.0×`, `64×`.
    pub fn speed_label(&self) -> String {
        let q = SPEEDS_QUARTERS[self.speed];
        match q {
            1 => "0.25×".to_owned(),
            2 => "0.5×".to_owned(),
            q if q < 40 => format!("{}.0×", q / 4),
            q => format!("{}×", q / 4),
        }
    }

    /// How far into the recording the clock is, and how long the part read so far spans.
    pub fn progress_ns(&self) -> Option<(u64, u64)> {
        let earliest = self.earliest?;
        let latest = self.latest?;
        let position = self.current()?;
        Some((position.saturating_sub(earliest), latest - earliest))
    }

    pub fn earliest(&self) -> Option<u64> {
        self.earliest
    }
}
