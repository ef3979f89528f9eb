//! What the user can ask for, independent of the key that asks for it.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    /// Up/down in the focused pane (the list, or the hops of the path).
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    /// Enter: open the selected journey's path (focus it, pinning the selection).
    Open,
    /// Tab: the other pane.
    SwitchFocus,
    /// Esc: close what is open (help, prompt, stepping, path focus), else clear the filter.
    Back,
    ToggleHelp,
    TogglePause,
    /// The next dropped journey below the selection (wrapping).
    NextDrop,
    /// `/`: edit the filter.
    StartFilter,
    FilterChar(char),
    FilterBackspace,
    /// Keep the filter and close the prompt.
    FilterAccept,
    /// Clear the filter and close the prompt.
    FilterCancel,
    /// Replay: speed up / slow down the playback clock.
    Faster,
    Slower,
    /// Replay: seek ±10 s.
    SeekForward,
    SeekBack,
    /// Replay: to the next / previous journey.
    NextJourney,
    PrevJourney,
    /// Show the selected journey's path one more hop.
    StepHop,
    /// Replay: show everything.
    JumpToEnd,
    /// `f`: the flows and their distinct paths, or back to the journeys.
    ToggleFlows,
}

/// What the loop does after an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Continue,
    Quit,
}
