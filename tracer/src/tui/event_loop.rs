//! The one loop: on a std thread (no async runtime), it
//!
//! 1. drains the channel without blocking — every event now waiting, up to a time budget
//!    so keys stay responsive under a flood, and in a replay only as far ahead of the
//!    playback clock as [`State::wants_more`] allows;
//! 2. advances the state's clock;
//! 3. draws, when something changed and the last frame is at least [`FRAME`] old (and at
//!    least every [`IDLE_REDRAW`] for the rate);
//! 4. waits for a key until the next frame is due, and applies it.
//!
//! Journeys never cause a draw themselves: a burst of thousands costs one frame.

use std::{
    io,
    sync::mpsc::{Receiver, TryRecvError},
    time::{Duration, Instant},
};

use crossterm::event::{self, Event};

use super::{
    Header, UiEvent,
    input::map_key,
    state::{DEFAULT_RETENTION, Outcome, State, View},
    terminal::{self, TerminalGuard},
    view::{self, Theme},
};

/// At most 30 frames per second.
pub const FRAME: Duration = Duration::from_millis(33);
/// Redraw at least this often, for the rate and the clock.
pub const IDLE_REDRAW: Duration = Duration::from_millis(500);
/// How long one turn may spend draining the channel.
const DRAIN_BUDGET: Duration = Duration::from_millis(15);

/// Runs the UI until the user quits (q / Ctrl-C). Restores the terminal on return, on
/// error and on panic.
pub fn run(header: Header, events: Receiver<UiEvent>) -> io::Result<()> {
    run_with_retention(header, events, DEFAULT_RETENTION, View::Journeys)
}

/// [`run`], keeping the newest `retention` journeys instead of [`DEFAULT_RETENTION`]
/// (a journey takes about 8 KB), starting in the `first` view (`--flows`: the flows).
pub fn run_with_retention(
    header: Header,
    events: Receiver<UiEvent>,
    retention: usize,
    first: View,
) -> io::Result<()> {
    let theme = Theme::from_env();
    let mut state = State::with_retention(header, retention);
    if first == View::Flows {
        state = state.showing_flows();
    }
    let mut guard = TerminalGuard::new()?;
    let started = Instant::now();
    let mut drawn: Option<(u64, Instant)> = None;
    let mut channel_open = true;
    loop {
        if terminal::panicked() {
            return Err(io::Error::other(
                "a thread panicked; the terminal UI stopped",
            ));
        }
        if channel_open {
            channel_open = drain(&mut state, &events);
        }
        state.tick(started.elapsed());
        let now = Instant::now();
        let due = drawn.is_none_or(|(generation, at)| {
            let age = now.duration_since(at);
            (generation != state.generation() && age >= FRAME) || age >= IDLE_REDRAW
        });
        if due {
            guard
                .terminal()
                .draw(|frame| view::render(frame, &state, theme))?;
            drawn = Some((state.generation(), Instant::now()));
        }
        // Until the next frame is due; when nothing is pending, look at the channel again
        // a frame from now.
        let wait = drawn.map_or(FRAME, |(_, at)| FRAME.saturating_sub(at.elapsed()));
        let wait = if wait.is_zero() { FRAME } else { wait };
        if event::poll(wait)? {
            // Take every key already queued before drawing again.
            loop {
                match event::read()? {
                    Event::Key(key) => {
                        if let Some(action) = map_key(key, state.prompt().is_some())
                            && state.handle(action) == Outcome::Quit
                        {
                            return Ok(());
                        }
                    }
                    Event::Resize(..) => drawn = None,
                    _ => {}
                }
                if !event::poll(Duration::ZERO)? {
                    break;
                }
            }
        }
    }
}

/// Applies what the channel holds now; false once it is closed (a closed channel ends the
/// source, as `SourceEnded` does).
fn drain(state: &mut State, events: &Receiver<UiEvent>) -> bool {
    let started = Instant::now();
    while state.wants_more() {
        match events.try_recv() {
            Ok(event) => state.apply(event),
            Err(TryRecvError::Empty) => return true,
            Err(TryRecvError::Disconnected) => {
                if !state.source_ended() {
                    state.apply(UiEvent::SourceEnded);
                }
                return false;
            }
        }
        if started.elapsed() >= DRAIN_BUDGET {
            break;
        }
    }
    true
}
