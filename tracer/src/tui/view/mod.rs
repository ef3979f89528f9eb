//! Drawing: [`render`] lays out the panes and asks each to draw itself from the
//! [`State`]; nothing here changes state. One file per pane: [`header`], [`list`],
//! [`path`] (the selected journey hop by hop), [`detail`] (the hop or journey under the
//! cursor), [`footer`], the [`help`] overlay, and [`too_small`].
//!
//! Layout: header on top, footer at the bottom, the list above the path. From
//! [`WIDE`] columns the detail pane sits right of the path; narrower, it appears under
//! the path while the path has the focus (and the list shrinks to make room). The flow view
//! ([`flows`], `f`) takes the whole body.

pub mod detail;
pub mod flows;
pub mod footer;
pub mod header;
pub mod help;
pub mod list;
pub mod path;
pub mod text;
pub mod theme;
pub mod too_small;

use ratatui::{
    Frame,
    layout::{Constraint, Layout, Rect},
    text::Span,
    widgets::{Block, Borders},
};
pub use theme::Theme;

use super::state::{Focus, State, View};

/// The smallest terminal the UI draws in.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 15;
/// From this width the detail pane sits beside the path.
pub const WIDE: u16 = 110;

pub fn render(frame: &mut Frame, state: &State, theme: Theme) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        too_small::render(frame, area, (MIN_WIDTH, MIN_HEIGHT), theme);
        return;
    }
    let [top, body, bottom] = Layout::vertical([
        Constraint::Length(header::height(state)),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    header::render(frame, top, state, theme);
    footer::render(frame, bottom, state, theme);
    if state.view() == View::Flows {
        flows::render(frame, body, state, theme);
        if state.help_open() {
            help::render(frame, area, state, theme);
        }
        return;
    }
    let panes = panes(body, state.focus());
    list::render(frame, panes.list, state, theme);
    path::render(frame, panes.path, state, theme);
    if let Some(detail) = panes.detail {
        detail::render(frame, detail, state, theme);
    }
    if state.help_open() {
        help::render(frame, area, state, theme);
    }
}

struct Panes {
    list: Rect,
    path: Rect,
    detail: Option<Rect>,
}

fn panes(body: Rect, focus: Focus) -> Panes {
    let wide = body.width >= WIDE;
    let list_rows = match (focus, wide) {
        (Focus::List, _) => body.height * 45 / 100,
        (Focus::Path, true) => body.height * 35 / 100,
        (Focus::Path, false) => (body.height / 4).max(5),
    };
    let [list, rest] =
        Layout::vertical([Constraint::Length(list_rows), Constraint::Min(0)]).areas(body);
    if wide {
        let detail_cols = (body.width * 2 / 5).clamp(40, 64);
        let [path, detail] =
            Layout::horizontal([Constraint::Min(0), Constraint::Length(detail_cols)]).areas(rest);
        return Panes {
            list,
            path,
            detail: Some(detail),
        };
    }
    if focus == Focus::Path {
        let detail_rows = (rest.height * 2 / 5).max(5);
        let [path, detail] =
            Layout::vertical([Constraint::Min(0), Constraint::Length(detail_rows)]).areas(rest);
        return Panes {
            list,
            path,
            detail: Some(detail),
        };
    }
    Panes {
        list,
        path: rest,
        detail: None,
    }
}

/// A pane's frame: a rule on top carrying its title, highlighted when it has the focus.
fn pane(title: String, focused: bool, theme: Theme) -> Block<'static> {
    let style = if focused {
        theme.focused_title()
    } else {
        theme.title()
    };
    Block::new()
        .borders(Borders::TOP)
        .title(Span::styled(title, style))
        .border_style(theme.rule())
}
