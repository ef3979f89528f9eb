//! Styles. With `NO_COLOR` set (and not empty, as <https://no-color.org> asks) no colour is
//! used; what colour says is also said by symbols (`✓ ✗ ? ~ ●`) and by bold, dim and
//! reverse, which every terminal shows.

use ratatui::style::{Color, Modifier, Style};

use crate::journey::model::Verdict;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Theme {
    pub color: bool,
}

impl Theme {
    /// Colour unless `NO_COLOR` is set to something.
    pub fn from_env() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self { color: !no_color }
    }

    pub fn plain() -> Self {
        Self { color: false }
    }

    pub fn colored() -> Self {
        Self { color: true }
    }

    fn fg(self, color: Color) -> Style {
        if self.color {
            Style::new().fg(color)
        } else {
            Style::new()
        }
    }

    pub fn text(self) -> Style {
        Style::new()
    }

    pub fn muted(self) -> Style {
        self.fg(Color::DarkGray).add_modifier(Modifier::DIM)
    }

    /// Pane borders: grey, no modifier (a dim border would dim the pane title too).
    pub fn rule(self) -> Style {
        self.fg(Color::DarkGray)
    }

    pub fn label(self) -> Style {
        self.fg(Color::Cyan)
    }

    pub fn title(self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    pub fn focused_title(self) -> Style {
        self.fg(Color::Cyan)
            .add_modifier(Modifier::BOLD | Modifier::REVERSED)
    }

    pub fn selected(self) -> Style {
        Style::new().add_modifier(Modifier::REVERSED)
    }

    pub fn verdict(self, v: Verdict) -> Style {
        match v {
            Verdict::Delivered => self.fg(Color::Green),
            Verdict::Dropped => self.fg(Color::Red).add_modifier(Modifier::BOLD),
            Verdict::Incomplete => self.fg(Color::Yellow),
        }
    }

    pub fn dropped(self) -> Style {
        self.verdict(Verdict::Dropped)
    }

    /// A hop tracer inferred (NAT, route).
    pub fn inferred(self) -> Style {
        self.fg(Color::Gray).add_modifier(Modifier::DIM)
    }

    /// A hop no hook saw: a gap in what is known, not a drop.
    pub fn not_observed(self) -> Style {
        self.fg(Color::Yellow).add_modifier(Modifier::ITALIC)
    }

    pub fn node_rule(self) -> Style {
        self.fg(Color::Blue).add_modifier(Modifier::BOLD)
    }

    pub fn change(self) -> Style {
        self.fg(Color::Magenta)
    }

    pub fn badge(self, color: Color) -> Style {
        let s = Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED);
        if self.color { s.fg(color) } else { s }
    }

    /// Notices the user must not miss (recording stopped, …).
    pub fn notice(self) -> Style {
        let s = Style::new().add_modifier(Modifier::BOLD);
        if self.color {
            s.fg(Color::Black).bg(Color::Yellow)
        } else {
            s.add_modifier(Modifier::REVERSED)
        }
    }

    pub fn warning(self) -> Style {
        self.fg(Color::Red).add_modifier(Modifier::BOLD)
    }

    pub fn key(self) -> Style {
        self.fg(Color::Cyan).add_modifier(Modifier::BOLD)
    }
}
