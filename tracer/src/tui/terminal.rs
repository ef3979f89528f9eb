//! The terminal while the UI runs: raw mode and the alternate screen, restored exactly once
//! — when the guard is dropped (return, error) or, on a panic in any thread, by a panic hook
//! before the panic message is printed, so the message lands on the normal screen and
//! stays readable. Restoring twice would not be harmless: leaving the alternate screen
//! again moves the cursor back over what was printed since.
//!
//! A panic in another thread (a source, say) also restores the terminal; the loop then
//! sees [`panicked`] and stops with an error instead of drawing on the normal screen.

use std::{
    io::{self, Stdout, stdout},
    sync::{
        Once,
        atomic::{AtomicBool, Ordering},
    },
};

use crossterm::{
    cursor::Show,
    execute,
    terminal::{EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode},
};
use ratatui::{Terminal, backend::CrosstermBackend};

pub type Tty = Terminal<CrosstermBackend<Stdout>>;

/// The terminal is in raw mode on the alternate screen and must be restored.
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// A panic restored the terminal.
static PANICKED: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

pub struct TerminalGuard {
    terminal: Tty,
}

impl TerminalGuard {
    pub fn new() -> io::Result<Self> {
        install_panic_hook();
        ACTIVE.store(true, Ordering::SeqCst);
        PANICKED.store(false, Ordering::SeqCst);
        let setup = enable_raw_mode()
            .and_then(|()| execute!(stdout(), EnterAlternateScreen))
            .and_then(|()| Terminal::new(CrosstermBackend::new(stdout())));
        match setup {
            Ok(terminal) => Ok(Self { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }

    pub fn terminal(&mut self) -> &mut Tty {
        &mut self.terminal
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Whether a panic (in any thread) restored the terminal while the UI ran.
pub fn panicked() -> bool {
    PANICKED.load(Ordering::SeqCst)
}

/// Leaves raw mode and the alternate screen, if nobody did yet.
fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        // Best effort: there is nothing better to do with a failure here.
        let _ = disable_raw_mode();
        let _ = execute!(stdout(), LeaveAlternateScreen, Show);
    }
}

fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if ACTIVE.load(Ordering::SeqCst) {
                PANICKED.store(true, Ordering::SeqCst);
            }
            restore();
            previous(info);
        }));
    });
}
