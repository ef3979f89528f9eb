//! The header: the state badge (LIVE / PAUSED / REPLAY 2.0× / END) and what is followed;
//! counts by verdict, the rate, lost events and the replay position; retention, the
//! recording file, the source and how a live stitch set the machines' clocks; and the
//! newest notice, when there is one, on a line of
//! its own.

use ratatui::{
    Frame,
    layout::Rect,
    style::Color,
    text::{Line, Span},
    widgets::Paragraph,
};

use super::{Theme, text};
use crate::{
    journey::model::Verdict,
    tui::{
        Mode,
        state::{Phase, State},
    },
};

/// Rows the header needs.
pub fn height(state: &State) -> u16 {
    if state.notices().is_empty() { 3 } else { 4 }
}

pub fn render(frame: &mut Frame, area: Rect, state: &State, theme: Theme) {
    let w = usize::from(area.width);
    let mut lines = vec![
        title_line(state, theme, w),
        stats_line(state, theme, w),
        source_line(state, theme, w),
    ];
    if let Some(notice) = state.notices().last() {
        let more = state.notices().len() - 1;
        let extra = if more > 0 {
            format!(" (+{more} earlier, see ?)")
        } else {
            String::new()
        };
        // One line: a summary's notes follow its first line.
        let text = format!(
            "⚠ {}{extra}",
            notice.lines().collect::<Vec<_>>().join(" · ")
        );
        lines.push(Line::from(Span::styled(
            text::fit(&text, w),
            theme.notice(),
        )));
    }
    frame.render_widget(Paragraph::new(lines), area);
}

fn badge(state: &State, theme: Theme) -> Span<'static> {
    let (text, color) = match state.phase() {
        Phase::Live => (" LIVE ".to_owned(), Color::Green),
        Phase::Paused { arrived } => (format!(" PAUSED +{arrived} new "), Color::Yellow),
        Phase::Replay { speed } => (format!(" REPLAY {speed} "), Color::Cyan),
        Phase::ReplayPaused { speed } => (format!(" PAUSED replay {speed} "), Color::Yellow),
        Phase::End => (" END ".to_owned(), Color::Magenta),
    };
    Span::styled(text, theme.badge(color))
}

fn title_line(state: &State, theme: Theme, w: usize) -> Line<'static> {
    let badge = badge(state, theme);
    let used = text::width(&badge.content) + 1;
    let following = text::truncate(&state.header().following, w.saturating_sub(used));
    Line::from(vec![
        badge,
        Span::raw(" "),
        Span::styled(following, theme.title()),
    ])
}

fn stats_line(state: &State, theme: Theme, w: usize) -> Line<'static> {
    let counts = state.counts();
    let mut spans = vec![
        Span::raw(format!(
            "{} journeys ({:.1}/s) ",
            counts.total(),
            state.rate()
        )),
        Span::styled(
            format!("✓{}", counts.delivered),
            theme.verdict(Verdict::Delivered),
        ),
        Span::raw(" "),
        Span::styled(
            format!("✗{}", counts.dropped),
            theme.verdict(Verdict::Dropped),
        ),
        Span::raw(" "),
        Span::styled(
            format!("?{}", counts.incomplete),
            theme.verdict(Verdict::Incomplete),
        ),
    ];
    // Everything skipped is said; "lost 0" says that nothing was.
    let skipped = state.counters().compact();
    spans.push(Span::raw("  "));
    if skipped.is_empty() {
        spans.push(Span::styled("lost 0".to_owned(), theme.muted()));
    } else {
        spans.push(Span::styled(skipped, theme.warning()));
    }
    if let Some(progress) = replay_progress(state) {
        spans.push(Span::raw("  "));
        spans.push(Span::styled(progress, theme.label()));
    }
    clip(spans, w)
}

fn replay_progress(state: &State) -> Option<String> {
    if state.mode() != Mode::Replay {
        return None;
    }
    let Some((at, span)) = state.playback().and_then(|p| p.progress_ns()) else {
        return Some("reading…".to_owned());
    };
    // `+`: the recording is still being read, so it may be longer.
    let more = if state.source_ended() { "" } else { "+" };
    Some(format!(
        "at {:.1} of {:.1}{more} s",
        at as f64 / 1e9,
        span as f64 / 1e9
    ))
}

fn source_line(state: &State, theme: Theme, w: usize) -> Line<'static> {
    let header = state.header();
    let (capacity, discarded) = state.retention();
    let retention = if discarded > 0 {
        format!("keeping last {capacity} ({discarded} older let go)  ")
    } else {
        format!("keeping last {capacity}  ")
    };
    let mut spans = vec![Span::styled(retention, theme.muted())];
    if let Some(path) = &header.recording {
        spans.push(Span::styled("recording ".to_owned(), theme.muted()));
        spans.push(Span::raw(format!("{}  ", path.display())));
    }
    spans.push(Span::styled("source ".to_owned(), theme.muted()));
    spans.push(Span::raw(header.source.clone()));
    if let Some(clocks) = state.clocks() {
        spans.push(Span::styled("  clocks ".to_owned(), theme.muted()));
        spans.push(Span::raw(clocks.to_owned()));
    }
    clip(spans, w)
}

/// Cuts a line of spans to `w` columns.
pub fn clip(spans: Vec<Span<'static>>, w: usize) -> Line<'static> {
    let mut used = 0;
    let mut out = Vec::new();
    for span in spans {
        let sw = text::width(&span.content);
        if used + sw <= w {
            used += sw;
            out.push(span);
            continue;
        }
        let room = w.saturating_sub(used);
        if room > 0 {
            out.push(Span::styled(
                text::truncate(&span.content, room),
                span.style,
            ));
        }
        break;
    }
    Line::from(out)
}
