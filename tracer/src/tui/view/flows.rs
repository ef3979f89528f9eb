//! The flow view (`f`): each flow, then each of its distinct paths — verdict, packets,
//! latency spread, last seen — with the path's places on the lines under it (and, for a
//! path that did not deliver, its diagnosis). The cursor is
//! on a path; Enter lists that path's journeys. Rows are built only for what is on screen.

use ratatui::{
    Frame,
    layout::Rect,
    text::{Line, Span},
    widgets::Paragraph,
};

use super::{Theme, text};
use crate::{clock::format_duration, journey::model::Verdict, tui::state::State};

/// One drawn line: a flow's heading, or a path (two lines: its figures, its places).
enum Row<'a> {
    Flow(String),
    Path {
        cursor: usize,
        figures: String,
        steps: &'a [String],
        verdict: Verdict,
        diagnosis: &'a str,
    },
}

pub fn render(frame: &mut Frame, area: Rect, state: &State, theme: Theme) {
    let table = state.flows();
    let beyond = if table.beyond() > 0 {
        format!(" (+{} journeys on paths not kept)", table.beyond())
    } else {
        String::new()
    };
    let title = format!(
        " Flows {} · paths {}{beyond} (Enter lists a path's journeys · Esc or f returns) ",
        table.flows().count(),
        table.paths()
    );
    let block = super::pane(title, true, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height == 0 {
        return;
    }
    let w = usize::from(inner.width);
    let mut rows = Vec::new();
    let mut cursor = 0;
    for (flow, paths) in table.flows() {
        rows.push(Row::Flow(flow.describe()));
        for (i, p) in paths.iter().enumerate() {
            let d = p.durations();
            rows.push(Row::Path {
                cursor,
                figures: format!(
                    "path {} {} {:<10} {:>7} pkts{}  p50 {:>9}  p99 {:>9}  last {}",
                    i + 1,
                    text::verdict_symbol(p.verdict),
                    p.verdict.as_str(),
                    p.packets,
                    table
                        .more_counted(p)
                        .map_or_else(String::new, |more| format!(" +{more} counted")),
                    format_duration(d.p50),
                    format_duration(d.p99),
                    text::clock(&p.last_seen),
                ),
                steps: &p.steps,
                verdict: p.verdict,
                diagnosis: &p.diagnosis,
            });
            cursor += 1;
        }
    }
    if rows.is_empty() {
        let empty = if state.source_ended() {
            "  no journeys"
        } else {
            "  no journeys yet: flows appear as journeys are shown"
        };
        frame.render_widget(
            Paragraph::new(Line::from(Span::styled(empty, theme.muted()))),
            inner,
        );
        return;
    }
    // Each path takes its figures, its places (wrapped) and, when it did not deliver, its
    // diagnosis; scroll so the cursor's path is on screen, whole.
    let selected = state.flow_cursor();
    let mut lines = Vec::new();
    let mut selected_end = 0;
    for row in &rows {
        match row {
            Row::Flow(heading) => {
                lines.push(Line::from(Span::styled(
                    text::truncate(heading, w),
                    theme.label(),
                )));
            }
            Row::Path {
                cursor,
                figures,
                steps,
                verdict,
                diagnosis,
            } => {
                let is_selected = *cursor == selected;
                let verdict_style = theme.verdict(*verdict);
                let mut style = if *verdict == Verdict::Delivered {
                    theme.text()
                } else {
                    verdict_style
                };
                if is_selected {
                    style = style.patch(theme.selected());
                }
                let mark = if is_selected { "▶ " } else { "  " };
                lines.push(Line::from(Span::styled(
                    text::truncate(&format!("{mark}{figures}"), w),
                    style,
                )));
                for places in wrap(steps, w.saturating_sub(4)) {
                    lines.push(Line::from(Span::styled(
                        format!("    {places}"),
                        theme.muted(),
                    )));
                }
                if *verdict != Verdict::Delivered {
                    lines.push(Line::from(Span::styled(
                        text::truncate(&format!("    ⇒ {diagnosis}"), w),
                        verdict_style,
                    )));
                }
                if is_selected {
                    selected_end = lines.len();
                }
            }
        }
    }
    let height = usize::from(inner.height);
    let first_line = selected_end.saturating_sub(height);
    let shown: Vec<Line> = lines.into_iter().skip(first_line).take(height).collect();
    frame.render_widget(Paragraph::new(shown), inner);
}

/// At most this many lines of places per path.
const PLACE_LINES: usize = 3;

/// Lines a path's places take: the steps joined by arrows, wrapped at `width`, at most
/// [`PLACE_LINES`]; what does not fit is cut from the middle of the last, so where the path
/// ends (delivered, dropped) always shows.
fn wrap(steps: &[String], width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for step in steps {
        let piece = if current.is_empty() {
            if lines.is_empty() {
                step.clone()
            } else {
                format!("→ {step}")
            }
        } else {
            format!(" → {step}")
        };
        let full = text::width(&current) + text::width(&piece) > width;
        if full && !current.is_empty() && lines.len() + 1 < PLACE_LINES {
            lines.push(std::mem::take(&mut current));
            current = format!("→ {step}");
        } else {
            current.push_str(&piece);
        }
    }
    lines.push(current);
    lines
        .into_iter()
        .map(|line| text::truncate_middle(&line, width))
        .collect()
}
