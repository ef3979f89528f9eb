//! The terminal while the UI runs: raw mode and the alternate screen, restored when the
//! guard is dropped — on return, on error, and while unwinding from a panic. ratatui's
//! `try_init` also installs a panic hook that restores the terminal before the panic
//! message is printed, so the message is readable.

use std::io;

use ratatui::DefaultTerminal;

pub struct TerminalGuard {
    terminal: DefaultTerminal,
}

impl TerminalGuard {
    pub fn new() -> io::Result<Self> {
        match ratatui::try_init() {
            Ok(terminal) => Ok(Self { terminal }),
            Err(e) => {
                // Raw mode may already be on when entering the alternate screen failed.
                ratatui::restore();
                Err(e)
            }
        }
    }

    pub fn terminal(&mut self) -> &mut DefaultTerminal {
        &mut self.terminal
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let _ = self.terminal.show_cursor();
        ratatui::restore();
    }
}
