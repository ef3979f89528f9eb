//! How a live session is asked to end: Ctrl-C, SIGTERM, or the UI's quit key. The journeys
//! in flight are still explained and shown.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// Asks a running session to finish (what Ctrl-C does); used by the TUI's quit key.
pub fn request_stop() {
    STOP.store(true, Ordering::Relaxed);
}

/// Whether the session was asked to finish.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

extern "C" fn on_stop_signal(_signal: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Ctrl-C and SIGTERM end the run cleanly. Installed before anything is attached, so a
/// signal during start-up also ends cleanly.
pub fn install_stop_handlers() {
    let handler = on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}
