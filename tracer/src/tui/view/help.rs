//! The help overlay (`?`): the keys, what the marks mean, and the notices so far.

use ratatui::{
    Frame,
    layout::Rect,
    text::{Line, Span},
    widgets::{Block, Borders, Clear, Paragraph},
};

use super::{Theme, text};
use crate::tui::state::State;

const KEYS: &[(&str, &str)] = &[
    ("↑ ↓  j k", "move in the list, or among hops in the path"),
    ("Enter", "open the selected journey's path"),
    ("Tab", "switch focus: list ⇄ path"),
    ("g G", "top / bottom (bottom follows the newest)"),
    ("/", "filter: Pod, Service, verdict, protocol, IP"),
    ("Esc", "close / back / clear the filter"),
    ("f", "flows and their paths (Enter: a path's journeys)"),
    ("space", "pause (ingest goes on)"),
    ("d", "next dropped journey"),
    (".", "step through the path hop by hop"),
    ("+ -", "replay speed 0.25× … 64×"),
    ("] [", "replay: seek ±10 s"),
    ("n p", "replay: next / previous journey"),
    ("End", "replay: jump to the end"),
    ("q  Ctrl-C", "quit"),
];

const MARKS: &[(&str, &str)] = &[
    ("✓ ✗ ?", "delivered, dropped, incomplete"),
    ("●", "hop seen by a kernel hook"),
    ("~", "hop inferred by tracer (NAT, route)"),
    ("?", "expected hop not observed (not a drop)"),
];

pub fn render(frame: &mut Frame, area: Rect, state: &State, theme: Theme) {
    let notices = state.notices();
    let wanted = 2
        + KEYS.len()
        + 1
        + MARKS.len()
        + if notices.is_empty() {
            0
        } else {
            1 + notices.len().min(5)
        }
        + 1;
    let height = u16::try_from(wanted).unwrap_or(u16::MAX).min(area.height);
    let width = 64.min(area.width);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let block = Block::new()
        .borders(Borders::ALL)
        .title(Span::styled(" Help — Esc or ? closes ", theme.title()))
        .border_style(theme.label());
    let inner = block.inner(popup);
    let w = usize::from(inner.width);
    let mut lines = Vec::new();
    let row = |k: &str, d: &str| {
        Line::from(vec![
            Span::styled(format!(" {}", text::fit(k, 11)), theme.key()),
            Span::raw(text::truncate(d, w.saturating_sub(13))),
        ])
    };
    for (k, d) in KEYS {
        lines.push(row(k, d));
    }
    lines.push(Line::raw(""));
    for (k, d) in MARKS {
        lines.push(row(k, d));
    }
    if !notices.is_empty() {
        lines.push(Line::raw(""));
        for n in notices.iter().rev().take(5) {
            lines.push(Line::from(Span::styled(
                text::truncate(&format!(" ⚠ {n}"), w),
                theme.warning(),
            )));
        }
    }
    frame.render_widget(Clear, popup);
    frame.render_widget(block, popup);
    frame.render_widget(Paragraph::new(lines), inner);
}
