//! What is drawn instead of the UI when the terminal cannot hold it.

use ratatui::{
    Frame,
    layout::Rect,
    text::{Line, Span},
    widgets::{Paragraph, Wrap},
};

use super::Theme;

pub fn render(frame: &mut Frame, area: Rect, min: (u16, u16), theme: Theme) {
    let lines = vec![
        Line::from(Span::styled(
            format!("terminal too small (need ≥ {}×{})", min.0, min.1),
            theme.warning(),
        )),
        Line::raw(format!("now {}×{}", area.width, area.height)),
        Line::raw("enlarge it, or q to quit"),
    ];
    let top = area.height.saturating_sub(3) / 2;
    let inner = Rect {
        y: area.y + top,
        height: area.height - top,
        ..area
    };
    frame.render_widget(
        Paragraph::new(lines).centered().wrap(Wrap { trim: true }),
        inner,
    );
}
