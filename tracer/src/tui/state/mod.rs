//! Everything the UI shows, as plain data: no terminal, no ratatui, no clock of its own.
//!
//! - Ingest: [`State::apply`] takes each [`UiEvent`]. Journeys go into a [`Store`] that
//!   keeps the newest `retention` of them ([`DEFAULT_RETENTION`]) and lets older ones go
//!   (the header says so). Counts by verdict, the rate and the loss counters are kept
//!   apart, so they stay right after old journeys are let go.
//! - Shown: a journey is *revealed* when it arrives live while not paused, or when the
//!   playback clock passes its start in a replay. The list shows the revealed journeys
//!   that match the filter, in arrival order. Pausing a live session freezes the list
//!   while ingest and counts go on: what arrives meanwhile waits in a queue of its own
//!   (the newest fifth of `retention`), so the frozen list is not eaten away by
//!   retention, and is shown on resume. Pausing a replay stops its clock and the reading.
//!   Memory: a journey takes about 8 KB (its hops are most of it), so the default keeps
//!   about 400 MB at most, 480 MB while paused.
//! - Time: [`State::tick`] is given the time since the UI started; it runs the playback
//!   clock and the rate meter. Tests pass any times they like.
//! - Selection: a journey (by arrival number, stable while others come and go), a hop
//!   within it, and which pane has the focus. While "following", the selection stays on
//!   the newest journey, as `tail -f` does; moving up stops that, `G` resumes it.
//! - Flows (`f`): the revealed journeys grouped into flows and their distinct paths
//!   (`crate::flows`), with a cursor on one path; Enter lists only that path's journeys (a
//!   path filter beside the text filter; Esc clears it). Live, they count every journey
//!   shown since the start; a replay's seek recounts them from the journeys still kept.
//!   A sampling replay's counts are shown on the playback clock too ([`counted`]).

pub mod action;
mod counted;
pub mod filter;
pub mod playback;
pub mod rate;
pub mod store;
#[cfg(test)]
mod tests;

use std::{cmp::Reverse, collections::BinaryHeap, collections::VecDeque, time::Duration};

pub use action::{Action, Outcome};
use counted::{CountsOnClock, KEPT_PLACES};
pub use filter::Filter;
pub use playback::{Playback, SEEK_NS};
pub use rate::RateMeter;
pub use store::{Entry, Seq, Store};

use super::{Header, Mode, UiEvent};
use crate::{
    flows::{self, FlowKey, FlowTable},
    journey::model::{Journey, Verdict},
    pipeline::Counters,
};

/// How many journeys the UI keeps by default.
pub const DEFAULT_RETENTION: usize = 50_000;
/// Replay: how many journeys are read ahead of the playback clock before the loop stops
/// draining the channel (the reader then waits on a bounded channel).
pub const READ_AHEAD: usize = 10_000;
/// How many lines PageUp/PageDown move.
const PAGE: usize = 10;
/// How many notices are kept.
const NOTICES: usize = 50;

/// What the body shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Journeys,
    Flows,
}

/// The journeys of one flow path (the flow view's Enter).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathFilter {
    pub flow: FlowKey,
    pub steps: Vec<String>,
    pub verdict: Verdict,
    /// `path 2 of tcp nettest → svc/nginx-test:80 (request)`.
    pub label: String,
}

impl PathFilter {
    pub fn matches(&self, journey: &Journey) -> bool {
        journey.verdict == self.verdict
            && FlowKey::of(journey) == self.flow
            && flows::steps(journey) == self.steps
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    List,
    Path,
}

/// What the header's state badge says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Live,
    /// Live and frozen; `arrived` journeys came in since.
    Paused {
        arrived: u64,
    },
    Replay {
        speed: String,
    },
    ReplayPaused {
        speed: String,
    },
    /// Live: the kernel side stopped. Replay: the recording is read and all of it shown.
    End,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub delivered: u64,
    pub dropped: u64,
    pub incomplete: u64,
}

impl Counts {
    fn add(&mut self, verdict: Verdict, sign: i8) {
        let n = match verdict {
            Verdict::Delivered => &mut self.delivered,
            Verdict::Dropped => &mut self.dropped,
            Verdict::Incomplete => &mut self.incomplete,
        };
        *n = if sign >= 0 {
            n.saturating_add(1)
        } else {
            n.saturating_sub(1)
        };
    }

    pub fn total(&self) -> u64 {
        self.delivered + self.dropped + self.incomplete
    }
}

#[derive(Debug)]
pub struct State {
    header: Header,
    store: Store,
    /// Revealed journeys that match the filter, ascending arrival number.
    visible: VecDeque<Seq>,
    filter: Filter,
    /// The filter text being edited, while the prompt is open.
    prompt: Option<String>,
    help: bool,
    focus: Focus,
    selected: Option<Seq>,
    follow: bool,
    hop: usize,
    /// Stepping through the selected journey: hops up to this one are shown.
    step: Option<usize>,
    /// Paused; how many journeys arrived since.
    paused: Option<u64>,
    /// Live and paused: what arrived meanwhile, newest `retention / 5` of it.
    held: VecDeque<Box<Journey>>,
    /// Journeys let go from `held` to stay within retention.
    held_dropped: u64,
    /// Replay only.
    playback: Option<Playback>,
    /// Replay: arrived, not yet due, by (start, arrival).
    pending: BinaryHeap<Reverse<(u64, Seq)>>,
    counts: Counts,
    counters: Counters,
    notices: Vec<String>,
    /// How a live stitch across machines set their clocks.
    clocks: Option<String>,
    source_ended: bool,
    rate: RateMeter,
    now: Duration,
    /// Set by the last action when it could not do what was asked; cleared by the next.
    status: Option<String>,
    generation: u64,
    view: View,
    flows: FlowTable,
    /// Replay: the recorded counts, shown in `flows` as the clock passes them.
    counted: CountsOnClock,
    /// The flow view's cursor: which path, counted across flows.
    flow_cursor: usize,
    path_filter: Option<PathFilter>,
}

impl State {
    pub fn new(header: Header) -> Self {
        Self::with_retention(header, DEFAULT_RETENTION)
    }

    pub fn with_retention(header: Header, retention: usize) -> Self {
        let playback = (header.mode == Mode::Replay).then(Playback::new);
        Self {
            header,
            store: Store::new(retention),
            visible: VecDeque::new(),
            filter: Filter::default(),
            prompt: None,
            help: false,
            focus: Focus::List,
            selected: None,
            follow: true,
            hop: 0,
            step: None,
            paused: None,
            held: VecDeque::new(),
            held_dropped: 0,
            playback,
            pending: BinaryHeap::new(),
            counts: Counts::default(),
            counters: Counters::default(),
            notices: Vec::new(),
            clocks: None,
            source_ended: false,
            rate: RateMeter::default(),
            now: Duration::ZERO,
            status: None,
            generation: 0,
            view: View::Journeys,
            flows: FlowTable::default(),
            counted: CountsOnClock::default(),
            flow_cursor: 0,
            path_filter: None,
        }
    }

    /// Starts in the flow view (`--flows`).
    #[must_use]
    pub fn showing_flows(mut self) -> Self {
        self.view = View::Flows;
        self
    }

    // ----- ingest -----

    pub fn apply(&mut self, event: UiEvent) {
        self.generation += 1;
        match event {
            UiEvent::Journey(journey) => self.ingest(journey),
            UiEvent::Counters(counters) => self.counters = counters,
            UiEvent::Sampling(shift) => self.flows.sampling(shift),
            UiEvent::HopCounts { at_ns, counts } => {
                if self.playback.is_none() {
                    self.flows.hop_counts(&counts);
                } else {
                    self.counted.push(at_ns, counts);
                    let unclocked = self
                        .playback
                        .as_ref()
                        .is_some_and(|p| p.current().is_none());
                    if unclocked && self.counted.unshown_places() > KEPT_PLACES {
                        // No journey yet to put a clock on: shown, rather than held.
                        for counts in self.counted.take_due(|_| true) {
                            self.flows.hop_counts(&counts);
                        }
                    }
                    self.show_due_counts();
                }
            }
            UiEvent::Notice(text) => {
                if let Some(clocks) = text.strip_prefix(crate::replay::merge::CLOCKS_NOTICE) {
                    // Not a warning: how the machines' times were put on one timeline.
                    self.clocks = Some(clocks.to_owned());
                    return;
                }
                if self.notices.len() >= NOTICES {
                    self.notices.remove(0);
                }
                self.notices.push(text);
            }
            UiEvent::SourceEnded => {
                self.source_ended = true;
                self.settle();
            }
        }
    }

    fn ingest(&mut self, journey: Box<Journey>) {
        if self.playback.is_none() {
            self.counts.add(journey.verdict, 1);
            self.rate.record(self.now, 1);
            if let Some(arrived) = &mut self.paused {
                *arrived += 1;
                if self.held.len() >= (self.store.capacity() / 5).max(1) {
                    self.held.pop_front();
                    self.held_dropped += 1;
                }
                self.held.push_back(journey);
                return;
            }
        }
        let start = journey.start_ns;
        let seq = self.store_journey(journey);
        match &mut self.playback {
            None => self.reveal(seq),
            Some(playback) => {
                playback.observe(start);
                if playback.is_due(start) {
                    self.reveal(seq);
                } else {
                    self.pending.push(Reverse((start, seq)));
                }
            }
        }
        self.after_list_change();
    }

    fn store_journey(&mut self, journey: Box<Journey>) -> Seq {
        let (seq, evicted) = self.store.push(journey);
        if let Some(evicted) = evicted {
            self.forget(evicted.seq);
        }
        seq
    }

    /// An evicted journey leaves the list (it is always the oldest).
    fn forget(&mut self, seq: Seq) {
        while self.visible.front().is_some_and(|s| *s <= seq) {
            self.visible.pop_front();
        }
        if self.selected == Some(seq) {
            self.selected = self.visible.front().copied();
            self.hop = 0;
            self.step = None;
        }
    }

    /// Shows a journey (if the filter lets it through). Replay counts it now; live counted
    /// it on arrival.
    fn reveal(&mut self, seq: Seq) {
        let replay = self.playback.is_some();
        let Some(entry) = self.store.get_mut(seq) else {
            return;
        };
        if entry.revealed {
            return;
        }
        entry.revealed = true;
        let verdict = entry.journey.verdict;
        self.flows.add(&entry.journey);
        let shown = self.filter.matches(&entry.journey)
            && self
                .path_filter
                .as_ref()
                .is_none_or(|p| p.matches(&entry.journey));
        if replay {
            self.counts.add(verdict, 1);
            self.rate.record(self.now, 1);
        }
        if shown {
            match self.visible.back() {
                Some(last) if *last > seq => {
                    let at = self.visible.partition_point(|s| *s < seq);
                    self.visible.insert(at, seq);
                }
                _ => self.visible.push_back(seq),
            }
        }
    }

    fn after_list_change(&mut self) {
        if self.follow {
            self.select(self.visible.back().copied());
        } else if self.selected.is_none() {
            self.select(self.visible.front().copied());
        }
    }

    fn select(&mut self, seq: Option<Seq>) {
        if self.selected != seq {
            self.selected = seq;
            self.hop = 0;
            self.step = None;
        }
    }

    /// The replay is over when the file is read and everything in it is due.
    fn settle(&mut self) {
        if self.source_ended
            && self.pending.is_empty()
            && let Some(p) = &mut self.playback
        {
            p.settle_at_end();
            self.show_due_counts();
        }
    }

    /// Replay: whether the clock has passed a read of counts made at `at_ns`; once the
    /// replay is over, every read (the last comes after the last journey).
    fn counts_due(&self) -> impl Fn(u64) -> bool + use<> {
        let over = self.source_ended && self.pending.is_empty();
        let playback = self.playback.clone();
        move |at_ns| over || playback.as_ref().is_some_and(|p| p.is_due(at_ns))
    }

    /// Replay: shows the reads of counts that became due; whether any did.
    fn show_due_counts(&mut self) -> bool {
        let due = self.counted.take_due(self.counts_due());
        for counts in &due {
            self.flows.hop_counts(counts);
        }
        if !due.is_empty() {
            self.generation += 1;
        }
        !due.is_empty()
    }

    /// Advances the UI's time to `now` (since the UI started): runs the playback clock and
    /// shows what became due.
    pub fn tick(&mut self, now: Duration) {
        let elapsed = now.saturating_sub(self.now);
        self.now = now;
        let Some(playback) = &mut self.playback else {
            return;
        };
        if playback.advance(elapsed) {
            self.generation += 1;
        }
        if self.reveal_due() {
            self.after_list_change();
        }
        self.show_due_counts();
        self.settle();
    }

    fn reveal_due(&mut self) -> bool {
        let mut any = false;
        while let Some(Reverse((start, seq))) = self.pending.peek().copied() {
            if !self.playback.as_ref().is_some_and(|p| p.is_due(start)) {
                break;
            }
            self.pending.pop();
            self.reveal(seq);
            any = true;
        }
        if any {
            self.generation += 1;
        }
        any
    }

    /// Replay: makes revealed/pending agree with the clock after a seek, and rebuilds the
    /// list.
    fn resync(&mut self) {
        let Some(playback) = &self.playback else {
            return;
        };
        let mut pending = BinaryHeap::new();
        for entry in self.store.iter_mut() {
            let due = playback.is_due(entry.journey.start_ns);
            if entry.revealed && !due {
                entry.revealed = false;
                self.counts.add(entry.journey.verdict, -1);
            } else if !entry.revealed && due {
                entry.revealed = true;
                self.counts.add(entry.journey.verdict, 1);
            }
            if !entry.revealed {
                pending.push(Reverse((entry.journey.start_ns, entry.seq)));
            }
        }
        self.pending = pending;
        self.flows.clear_paths();
        for entry in self.store.iter().filter(|e| e.revealed) {
            self.flows.add(&entry.journey);
        }
        self.flows.clear_counts();
        for counts in self.counted.rewind(self.counts_due()) {
            self.flows.hop_counts(&counts);
        }
        self.rebuild();
    }

    /// Recomputes the list from the store (filter changed, seek), keeping the selection
    /// where it can.
    fn rebuild(&mut self) {
        self.visible = self
            .store
            .iter()
            .filter(|e| {
                e.revealed
                    && self.filter.matches(&e.journey)
                    && self
                        .path_filter
                        .as_ref()
                        .is_none_or(|p| p.matches(&e.journey))
            })
            .map(|e| e.seq)
            .collect();
        if self.follow {
            self.select(self.visible.back().copied());
            return;
        }
        let keep = self.selected.and_then(|sel| {
            let at = self.visible.partition_point(|s| *s <= sel);
            // The selection itself, or the nearest one before it, or the first.
            at.checked_sub(1)
                .and_then(|i| self.visible.get(i))
                .or(self.visible.front())
                .copied()
        });
        self.select(keep.or_else(|| self.visible.front().copied()));
    }

    // ----- user actions -----

    pub fn handle(&mut self, action: Action) -> Outcome {
        self.generation += 1;
        self.status = None;
        if self.help {
            match action {
                Action::Quit => return Outcome::Quit,
                Action::ToggleHelp | Action::Back | Action::Open => self.help = false,
                _ => {}
            }
            return Outcome::Continue;
        }
        if self.view == View::Flows && self.prompt.is_none() && self.handle_in_flows(action) {
            return Outcome::Continue;
        }
        match action {
            Action::Quit => return Outcome::Quit,
            Action::ToggleFlows => self.view = View::Flows,
            Action::Up => self.move_by(-1),
            Action::Down => self.move_by(1),
            Action::PageUp => self.move_by(-(PAGE as i64)),
            Action::PageDown => self.move_by(PAGE as i64),
            Action::Top => self.move_to_end(false),
            Action::Bottom => self.move_to_end(true),
            Action::Open => {
                if self.selected.is_some() {
                    self.focus = Focus::Path;
                    self.follow = false;
                }
            }
            Action::SwitchFocus => {
                self.focus = match self.focus {
                    Focus::List => {
                        self.follow = false;
                        Focus::Path
                    }
                    Focus::Path => Focus::List,
                };
            }
            Action::Back => self.back(),
            Action::ToggleHelp => self.help = true,
            Action::TogglePause => self.toggle_pause(),
            Action::NextDrop => self.next_drop(),
            Action::StartFilter => self.prompt = Some(self.filter.text().to_owned()),
            Action::FilterChar(c) => {
                if let Some(p) = &mut self.prompt {
                    p.push(c);
                    let text = p.clone();
                    self.set_filter(&text);
                }
            }
            Action::FilterBackspace => {
                if let Some(p) = &mut self.prompt {
                    p.pop();
                    let text = p.clone();
                    self.set_filter(&text);
                }
            }
            Action::FilterAccept => self.prompt = None,
            Action::FilterCancel => {
                self.prompt = None;
                self.set_filter("");
            }
            Action::Faster | Action::Slower => self.with_playback(|p| {
                if action == Action::Faster {
                    p.faster();
                } else {
                    p.slower();
                }
            }),
            Action::SeekForward => self.seek(|p| p.seek_by(SEEK_NS as i64)),
            Action::SeekBack => self.seek(|p| p.seek_by(-(SEEK_NS as i64))),
            Action::NextJourney => self.next_journey(),
            Action::PrevJourney => self.prev_journey(),
            Action::StepHop => self.step_hop(),
            Action::JumpToEnd => {
                self.follow = true;
                self.seek(Playback::jump_to_end);
            }
        }
        Outcome::Continue
    }

    /// The flow view's own keys; `false` for the others (pause, replay, help), which do
    /// what they do in the journey list.
    fn handle_in_flows(&mut self, action: Action) -> bool {
        let last = self.flows.paths().saturating_sub(1);
        match action {
            Action::Up => self.flow_cursor = self.flow_cursor.saturating_sub(1),
            Action::Down => self.flow_cursor = (self.flow_cursor + 1).min(last),
            Action::PageUp => self.flow_cursor = self.flow_cursor.saturating_sub(PAGE),
            Action::PageDown => self.flow_cursor = (self.flow_cursor + PAGE).min(last),
            Action::Top => self.flow_cursor = 0,
            Action::Bottom => self.flow_cursor = last,
            Action::Open => self.open_flow_path(),
            Action::Back | Action::ToggleFlows => self.view = View::Journeys,
            _ => return false,
        }
        true
    }

    /// Lists only the journeys of the path under the flow cursor.
    fn open_flow_path(&mut self) {
        let Some((flow, index, path)) = self.flow_path_at(self.flow_cursor()) else {
            self.status = Some("no flow yet".into());
            return;
        };
        self.path_filter = Some(PathFilter {
            label: format!("path {} of {}", index + 1, flow.describe()),
            flow: flow.clone(),
            steps: path.steps.clone(),
            verdict: path.verdict,
        });
        self.view = View::Journeys;
        self.focus = Focus::List;
        self.follow = false;
        self.rebuild();
    }

    /// The flow, the path's index within it, and the path, at a cursor position.
    fn flow_path_at(&self, cursor: usize) -> Option<(&FlowKey, usize, &flows::PathStats)> {
        self.flows
            .flows()
            .flat_map(|(flow, paths)| paths.iter().enumerate().map(move |(i, p)| (flow, i, p)))
            .nth(cursor)
    }

    fn with_playback(&mut self, f: impl FnOnce(&mut Playback)) {
        match &mut self.playback {
            Some(p) => f(p),
            None => self.status = Some("replay only: speed, seek, n/p and End".into()),
        }
    }

    fn seek(&mut self, f: impl FnOnce(&mut Playback)) {
        if self.playback.is_none() {
            self.with_playback(|_| {});
            return;
        }
        self.with_playback(f);
        self.resync();
        self.settle();
    }

    fn selected_index(&self) -> Option<usize> {
        let sel = self.selected?;
        self.visible.binary_search(&sel).ok()
    }

    fn move_by(&mut self, delta: i64) {
        match self.focus {
            Focus::Path => {
                let last = self.last_hop();
                let target = (self.hop as i64 + delta).clamp(0, last as i64);
                self.hop = usize::try_from(target).unwrap_or(0);
            }
            Focus::List => {
                if self.visible.is_empty() {
                    return;
                }
                let last = self.visible.len() - 1;
                let at = self.selected_index().unwrap_or(last) as i64;
                let target = usize::try_from((at + delta).clamp(0, last as i64)).unwrap_or(0);
                self.select(self.visible.get(target).copied());
                self.follow = target == last && delta > 0;
            }
        }
    }

    fn move_to_end(&mut self, bottom: bool) {
        match self.focus {
            Focus::Path => self.hop = if bottom { self.last_hop() } else { 0 },
            Focus::List => {
                let target = if bottom {
                    self.visible.back()
                } else {
                    self.visible.front()
                };
                self.select(target.copied());
                self.follow = bottom;
            }
        }
    }

    /// The last hop the cursor may reach (the stepping point while stepping).
    fn last_hop(&self) -> usize {
        let hops = self.selected_journey().map_or(0, |j| j.hops.len());
        let last = hops.saturating_sub(1);
        self.step.map_or(last, |s| s.min(last))
    }

    fn back(&mut self) {
        if self.prompt.is_some() {
            self.prompt = None;
            self.set_filter("");
        } else if self.step.is_some() {
            self.step = None;
        } else if self.focus == Focus::Path {
            self.focus = Focus::List;
        } else if self.path_filter.is_some() {
            self.path_filter = None;
            self.rebuild();
        } else if !self.filter.is_empty() {
            self.set_filter("");
        }
    }

    fn set_filter(&mut self, text: &str) {
        if self.filter.text() == text {
            return;
        }
        self.filter = Filter::new(text);
        self.rebuild();
    }

    fn toggle_pause(&mut self) {
        if self.paused.take().is_some() {
            if let Some(p) = &mut self.playback {
                p.set_running(true);
            } else {
                while let Some(journey) = self.held.pop_front() {
                    let seq = self.store_journey(journey);
                    self.reveal(seq);
                }
                self.after_list_change();
            }
        } else {
            self.paused = Some(0);
            if let Some(p) = &mut self.playback {
                p.set_running(false);
            }
        }
    }

    fn next_drop(&mut self) {
        let start = self.selected_index().map_or(0, |i| i + 1);
        let n = self.visible.len();
        let found = (0..n).map(|k| (start + k) % n.max(1)).find(|&i| {
            self.visible
                .get(i)
                .and_then(|s| self.store.get(*s))
                .is_some_and(|e| e.journey.verdict == Verdict::Dropped)
        });
        match found {
            Some(i) => {
                self.select(self.visible.get(i).copied());
                self.follow = false;
            }
            None => self.status = Some("no dropped journey in the list".into()),
        }
    }

    fn next_journey(&mut self) {
        let Some(next) = self.pending.peek().map(|Reverse((start, _))| *start) else {
            if self.playback.is_some() {
                self.status = Some(if self.source_ended {
                    "no later journey".into()
                } else {
                    "no later journey read yet".into()
                });
            } else {
                self.with_playback(|_| {});
            }
            return;
        };
        self.follow = true;
        self.seek(|p| p.seek_to(next));
    }

    fn prev_journey(&mut self) {
        if self.playback.is_none() {
            self.with_playback(|_| {});
            return;
        }
        let revealed = || {
            self.store
                .iter()
                .filter(|e| e.revealed)
                .map(|e| e.journey.start_ns)
        };
        let Some(newest) = revealed().max() else {
            return;
        };
        let Some(before) = revealed().filter(|s| *s < newest).max() else {
            self.status = Some("no earlier journey".into());
            return;
        };
        self.follow = true;
        self.seek(|p| p.seek_to(before));
    }

    fn step_hop(&mut self) {
        let Some(hops) = self.selected_journey().map(|j| j.hops.len()) else {
            return;
        };
        self.follow = false;
        self.focus = Focus::Path;
        if let Some(p) = &mut self.playback
            && self.paused.is_none()
        {
            p.set_running(false);
            self.paused = Some(0);
        }
        self.step = match self.step {
            None => Some(0),
            Some(s) if s + 1 < hops => Some(s + 1),
            Some(_) => None,
        };
        self.hop = self.step.unwrap_or(hops.saturating_sub(1));
    }

    // ----- what the views read -----

    pub fn view(&self) -> View {
        self.view
    }

    pub fn flows(&self) -> &FlowTable {
        &self.flows
    }

    pub fn flow_cursor(&self) -> usize {
        self.flow_cursor.min(self.flows.paths().saturating_sub(1))
    }

    /// The flow path the list is narrowed to, if any.
    pub fn path_filter(&self) -> Option<&PathFilter> {
        self.path_filter.as_ref()
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn mode(&self) -> Mode {
        self.header.mode
    }

    /// Arrival numbers of the journeys in the list, oldest first.
    pub fn visible(&self) -> &VecDeque<Seq> {
        &self.visible
    }

    pub fn journey(&self, seq: Seq) -> Option<&Journey> {
        self.store.get(seq).map(|e| &*e.journey)
    }

    pub fn selected(&self) -> Option<Seq> {
        self.selected
    }

    /// Position of the selection in the list.
    pub fn selection_index(&self) -> Option<usize> {
        self.selected_index()
    }

    pub fn selected_journey(&self) -> Option<&Journey> {
        self.journey(self.selected?)
    }

    /// The hop under the cursor, within the selected journey.
    pub fn hop_cursor(&self) -> usize {
        self.hop.min(self.last_hop())
    }

    pub fn stepping(&self) -> Option<usize> {
        self.step
    }

    pub fn focus(&self) -> Focus {
        self.focus
    }

    pub fn following(&self) -> bool {
        self.follow
    }

    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    pub fn prompt(&self) -> Option<&str> {
        self.prompt.as_deref()
    }

    pub fn help_open(&self) -> bool {
        self.help
    }

    pub fn phase(&self) -> Phase {
        match &self.playback {
            // Paused first: what is held back shows on resume, even after the end.
            None => match self.paused {
                Some(arrived) => Phase::Paused { arrived },
                None if self.source_ended => Phase::End,
                None => Phase::Live,
            },
            Some(_) if self.source_ended && self.pending.is_empty() => Phase::End,
            Some(p) if p.running() => Phase::Replay {
                speed: p.speed_label(),
            },
            Some(p) => Phase::ReplayPaused {
                speed: p.speed_label(),
            },
        }
    }

    pub fn playback(&self) -> Option<&Playback> {
        self.playback.as_ref()
    }

    /// Journeys per second: arriving (live) or being played (replay).
    pub fn rate(&self) -> f64 {
        self.rate.per_second(self.now)
    }

    /// Journeys by verdict: all that arrived (live), or played so far (replay).
    pub fn counts(&self) -> Counts {
        self.counts
    }

    /// What the session skipped so far (kernel loss, evictions, filters, …).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// How a live stitch across machines set their clocks, once it has.
    pub fn clocks(&self) -> Option<&str> {
        self.clocks.as_deref()
    }

    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    pub fn source_ended(&self) -> bool {
        self.source_ended
    }

    /// How many journeys are kept, and how many older ones were let go.
    pub fn retention(&self) -> (usize, u64) {
        (
            self.store.capacity(),
            self.store.discarded() + self.held_dropped,
        )
    }

    /// Journeys read from the source so far.
    pub fn arrived(&self) -> u64 {
        self.store.arrived() + self.held.len() as u64 + self.held_dropped
    }

    /// Journeys kept in memory (up to 1.2 × the retention while paused).
    pub fn held(&self) -> usize {
        self.store.len() + self.held.len()
    }

    pub fn status(&self) -> Option<&str> {
        self.status.as_deref()
    }

    /// Changes whenever something on screen may have changed.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether the loop should take more events from the channel now: always live; in a
    /// replay only while it plays and little is read ahead of the clock (or everything is
    /// due after End).
    pub fn wants_more(&self) -> bool {
        match &self.playback {
            None => true,
            Some(_) if self.paused.is_some() => false,
            // Counts wait for the clock too, once it runs.
            Some(p) => {
                p.at_end()
                    || (self.pending.len() < READ_AHEAD
                        && (p.current().is_none() || self.counted.unshown_places() < KEPT_PLACES))
            }
        }
    }
}
