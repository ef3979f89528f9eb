//! The bottom line: the filter prompt while it is open, else the answer to the last key
//! when it could not be done, else the keys that matter here.

use ratatui::{
    Frame,
    layout::Rect,
    text::{Line, Span},
    widgets::Paragraph,
};

use super::{Theme, header::clip, text};
use crate::tui::{
    Mode,
    state::{Focus, State, View},
};

pub fn render(frame: &mut Frame, area: Rect, state: &State, theme: Theme) {
    let w = usize::from(area.width);
    let line = if let Some(prompt) = state.prompt() {
        clip(
            vec![
                Span::styled("/".to_owned(), theme.key()),
                Span::raw(prompt.to_owned()),
                Span::styled("█".to_owned(), theme.key()),
                Span::styled(
                    "  Enter keeps · Esc clears · Pod, Service, verdict, protocol, IP".to_owned(),
                    theme.muted(),
                ),
            ],
            w,
        )
    } else if let Some(status) = state.status() {
        clip(vec![Span::styled(status.to_owned(), theme.warning())], w)
    } else {
        hints(state, theme, w)
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn hints(state: &State, theme: Theme, w: usize) -> Line<'static> {
    let mut keys: Vec<(&str, &str)> = Vec::new();
    match (state.view(), state.focus()) {
        (View::Flows, _) => keys.extend([("↑↓", "path"), ("Enter", "its journeys"), ("f", "back")]),
        (View::Journeys, Focus::List) => keys.extend([("↑↓", "move"), ("Enter", "path")]),
        (View::Journeys, Focus::Path) => keys.extend([("↑↓", "hop"), ("Esc", "list")]),
    }
    if state.mode() == Mode::Replay {
        keys.extend([
            ("␣", "pause"),
            ("+-", "speed"),
            ("[]", "±10s"),
            ("n/p", "journey"),
            (".", "step"),
            ("End", "end"),
        ]);
    } else {
        keys.extend([("␣", "pause"), ("Tab", "focus"), (".", "step")]);
    }
    keys.extend([("/", "filter"), ("d", "drop")]);
    if state.view() == View::Journeys {
        keys.push(("f", "flows"));
    }
    // Help and quit always show; the others as far as there is room.
    let tail = [("?", "help"), ("q", "quit")];
    let cost = |(k, d): &(&str, &str)| text::width(k) + text::width(d) + 3;
    let mut room = w.saturating_sub(tail.iter().map(cost).sum());
    let mut spans = Vec::new();
    for key in keys.iter().take_while(|k| {
        let c = cost(k);
        let fits = c <= room;
        room = room.saturating_sub(c);
        fits
    }) {
        push(&mut spans, key, theme);
    }
    for key in &tail {
        push(&mut spans, key, theme);
    }
    clip(spans, w)
}

fn push(spans: &mut Vec<Span<'static>>, (k, d): &(&str, &str), theme: Theme) {
    spans.push(Span::styled((*k).to_owned(), theme.key()));
    spans.push(Span::styled(format!(" {d}  "), theme.muted()));
}
