//! The journey list: one row per journey, oldest at the top, newest at the bottom. Only
//! the rows on screen are built, so the list costs the same with 50 000 journeys as with
//! ten. Drops are red and marked `✗`, incomplete journeys `?`.

use ratatui::{
    Frame,
    layout::Rect,
    text::{Line, Span},
    widgets::Paragraph,
};

use super::{Theme, text};
use crate::{
    journey::model::Journey,
    tui::state::{Focus, State},
};

/// Column widths for a list `w` columns wide; the route column takes what is left.
struct Columns {
    time: usize,
    proto: usize,
    route: usize,
    dir: usize,
    verdict: usize,
    hops: usize,
    latency: usize,
}

impl Columns {
    fn for_width(w: usize) -> Self {
        let wide = w >= 110;
        let mut c = Self {
            time: 12,
            proto: 17,
            route: 0,
            dir: if wide { 7 } else { 3 },
            verdict: if wide { 10 } else { 0 },
            hops: 4,
            latency: 9,
        };
        // Selection and verdict marks, then one space between columns.
        let verdict = if wide { 1 + c.verdict } else { 0 };
        let fixed = 2 + 6 + c.time + c.proto + c.dir + verdict + c.hops + c.latency;
        c.route = w.saturating_sub(fixed).max(8);
        c
    }

    fn header(&self) -> String {
        let mut s = format!(
            "  {} {} {} {}",
            text::fit("TIME", self.time),
            text::fit("PROTO", self.proto),
            text::fit("FROM → TO", self.route),
            text::fit("DIR", self.dir)
        );
        if self.verdict > 0 {
            s.push(' ');
            s.push_str(&text::fit("VERDICT", self.verdict));
        }
        s.push_str(&format!(
            " {} {}",
            text::fit_right("HOPS", self.hops),
            text::fit_right("LATENCY", self.latency)
        ));
        s
    }

    fn row(&self, j: &Journey, selected: bool) -> String {
        let mark = text::verdict_symbol(j.verdict);
        let mut s = format!(
            "{}{mark} {} {} {} {}",
            if selected { "▶" } else { " " },
            text::fit(&text::clock(&j.started_at), self.time),
            text::fit(&text::protocol(j), self.proto),
            text::fit(&text::route(j, self.route), self.route),
            text::fit(text::direction(j.direction, self.verdict > 0), self.dir)
        );
        if self.verdict > 0 {
            s.push(' ');
            s.push_str(&text::fit(j.verdict.as_str(), self.verdict));
        }
        let observed = j.hops.iter().filter(|h| h.observed).count();
        s.push_str(&format!(
            " {} {}",
            text::fit_right(&observed.to_string(), self.hops),
            text::fit_right(&text::duration(j.duration_ns), self.latency)
        ));
        s
    }
}

pub fn render(frame: &mut Frame, area: Rect, state: &State, theme: Theme) {
    let focused = state.focus() == Focus::List;
    let title = title(state);
    let block = super::pane(title, focused, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if inner.height == 0 {
        return;
    }
    let w = usize::from(inner.width);
    let columns = Columns::for_width(w);
    let mut lines = vec![Line::from(Span::styled(
        text::truncate(&columns.header(), w),
        theme.muted(),
    ))];
    let rows = usize::from(inner.height).saturating_sub(1);
    let visible = state.visible();
    if visible.is_empty() {
        lines.push(Line::from(Span::styled(empty_text(state), theme.muted())));
    }
    let selected = state.selection_index();
    let offset = window_start(selected.unwrap_or(0), visible.len(), rows);
    for (i, seq) in visible.iter().enumerate().skip(offset).take(rows) {
        let Some(j) = state.journey(*seq) else {
            continue;
        };
        let is_selected = selected == Some(i);
        let row = text::truncate(&columns.row(j, is_selected), w);
        let mut style = theme.verdict(j.verdict);
        if j.verdict == crate::journey::model::Verdict::Delivered {
            style = theme.text();
        }
        if is_selected {
            style = style.patch(theme.selected());
        }
        lines.push(Line::from(Span::styled(row, style)));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

/// The first row to draw so that `selected` is on screen: the list scrolls only when the
/// selection would leave it, and shows its end when it is near.
pub fn window_start(selected: usize, len: usize, rows: usize) -> usize {
    if rows == 0 || len <= rows {
        return 0;
    }
    let max_start = len - rows;
    selected.saturating_sub(rows - 1).min(max_start)
}

fn title(state: &State) -> String {
    let shown = state.visible().len();
    let mut t = format!(" Journeys {shown}");
    if !state.filter().is_empty() {
        t.push_str(&format!(" matching “{}”", state.filter().text()));
    }
    if let Some(path) = state.path_filter() {
        t.push_str(&format!(" on {} (Esc: all)", path.label));
    }
    if let crate::tui::state::Phase::Paused { .. } = state.phase() {
        t.push_str(" · frozen (space resumes)");
    } else if state.following() {
        t.push_str(" · following newest");
    }
    t.push(' ');
    t
}

fn empty_text(state: &State) -> String {
    if state.arrived() == 0 {
        if state.source_ended() {
            "  no journeys".to_owned()
        } else {
            "  waiting for packets…".to_owned()
        }
    } else if !state.filter().is_empty() {
        "  nothing matches the filter (Esc clears it)".to_owned()
    } else {
        "  nothing shown yet".to_owned()
    }
}
