//! Keys to [`Action`]s. Pure: the loop reads a key, asks [`map_key`], and hands the action
//! to the state. While the filter prompt is open, printable keys are text.
//!
//! | key | action |
//! |---|---|
//! | `q`, Ctrl-C | quit |
//! | ↑/↓, `k`/`j` | move in the list, or among the hops when the path has the focus |
//! | PgUp/PgDn | move by ten |
//! | `g`/`G`, Home | top / bottom (bottom follows the newest journey) |
//! | Enter | open the selected journey's path (focus it) |
//! | Tab | switch focus between list and path |
//! | `/` | filter (Pod, Service, verdict, protocol, IP…); Enter keeps it, Esc clears it |
//! | Esc | close help / prompt / stepping / path focus, else clear the filter |
//! | space | pause (ingest goes on; the list freezes) |
//! | `d` | next dropped journey |
//! | `?` | help |
//! | `+`/`-` | replay speed (0.25× … 64×) |
//! | `]`/`[` | replay: seek forward / back 10 s |
//! | `n`/`p` | replay: next / previous journey |
//! | `.` | step through the selected journey hop by hop |
//! | End | replay: jump to the end (show everything) |
//! | `f` | flows and their distinct paths; Enter lists a path's journeys, Esc or `f` returns |

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::state::Action;

/// The key's action; `prompt` says whether the filter prompt is open.
pub fn map_key(key: KeyEvent, prompt: bool) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && matches!(key.code, KeyCode::Char('c' | 'C')) {
        return Some(Action::Quit);
    }
    if prompt {
        return match key.code {
            KeyCode::Enter => Some(Action::FilterAccept),
            KeyCode::Esc => Some(Action::FilterCancel),
            KeyCode::Backspace => Some(Action::FilterBackspace),
            KeyCode::Char(c) if !ctrl => Some(Action::FilterChar(c)),
            _ => None,
        };
    }
    if ctrl {
        return None;
    }
    Some(match key.code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Up | KeyCode::Char('k') => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Char('g') | KeyCode::Home => Action::Top,
        KeyCode::Char('G') => Action::Bottom,
        KeyCode::Enter => Action::Open,
        KeyCode::Tab | KeyCode::BackTab => Action::SwitchFocus,
        KeyCode::Esc => Action::Back,
        KeyCode::Char('?') => Action::ToggleHelp,
        KeyCode::Char(' ') => Action::TogglePause,
        KeyCode::Char('d') => Action::NextDrop,
        KeyCode::Char('/') => Action::StartFilter,
        KeyCode::Char('+' | '=') => Action::Faster,
        KeyCode::Char('-' | '_') => Action::Slower,
        KeyCode::Char(']') => Action::SeekForward,
        KeyCode::Char('[') => Action::SeekBack,
        KeyCode::Char('n') => Action::NextJourney,
        KeyCode::Char('p') => Action::PrevJourney,
        KeyCode::Char('.') => Action::StepHop,
        KeyCode::End => Action::JumpToEnd,
        KeyCode::Char('f') => Action::ToggleFlows,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ch(c: char) -> KeyEvent {
        key(KeyCode::Char(c))
    }

    #[test]
    fn navigation_keys() {
        assert_eq!(map_key(key(KeyCode::Up), false), Some(Action::Up));
        assert_eq!(map_key(ch('k'), false), Some(Action::Up));
        assert_eq!(map_key(key(KeyCode::Down), false), Some(Action::Down));
        assert_eq!(map_key(ch('j'), false), Some(Action::Down));
        assert_eq!(map_key(ch('g'), false), Some(Action::Top));
        assert_eq!(map_key(ch('G'), false), Some(Action::Bottom));
        assert_eq!(map_key(key(KeyCode::Enter), false), Some(Action::Open));
        assert_eq!(map_key(key(KeyCode::Tab), false), Some(Action::SwitchFocus));
        assert_eq!(map_key(key(KeyCode::Esc), false), Some(Action::Back));
        assert_eq!(map_key(ch('d'), false), Some(Action::NextDrop));
        assert_eq!(map_key(ch(' '), false), Some(Action::TogglePause));
        assert_eq!(map_key(ch('?'), false), Some(Action::ToggleHelp));
        assert_eq!(map_key(ch('/'), false), Some(Action::StartFilter));
        assert_eq!(map_key(ch('f'), false), Some(Action::ToggleFlows));
        assert_eq!(map_key(ch('x'), false), None);
    }

    #[test]
    fn replay_keys() {
        assert_eq!(map_key(ch('+'), false), Some(Action::Faster));
        assert_eq!(map_key(ch('-'), false), Some(Action::Slower));
        assert_eq!(map_key(ch(']'), false), Some(Action::SeekForward));
        assert_eq!(map_key(ch('['), false), Some(Action::SeekBack));
        assert_eq!(map_key(ch('n'), false), Some(Action::NextJourney));
        assert_eq!(map_key(ch('p'), false), Some(Action::PrevJourney));
        assert_eq!(map_key(ch('.'), false), Some(Action::StepHop));
        assert_eq!(map_key(key(KeyCode::End), false), Some(Action::JumpToEnd));
    }

    #[test]
    fn quit_with_q_or_ctrl_c_even_in_the_prompt() {
        assert_eq!(map_key(ch('q'), false), Some(Action::Quit));
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(map_key(ctrl_c, false), Some(Action::Quit));
        assert_eq!(map_key(ctrl_c, true), Some(Action::Quit));
    }

    #[test]
    fn prompt_takes_text() {
        assert_eq!(map_key(ch('q'), true), Some(Action::FilterChar('q')));
        assert_eq!(map_key(ch(' '), true), Some(Action::FilterChar(' ')));
        assert_eq!(map_key(ch('/'), true), Some(Action::FilterChar('/')));
        assert_eq!(
            map_key(key(KeyCode::Backspace), true),
            Some(Action::FilterBackspace)
        );
        assert_eq!(
            map_key(key(KeyCode::Enter), true),
            Some(Action::FilterAccept)
        );
        assert_eq!(map_key(key(KeyCode::Esc), true), Some(Action::FilterCancel));
    }

    #[test]
    fn key_releases_are_ignored() {
        let mut release = ch('q');
        release.kind = KeyEventKind::Release;
        assert_eq!(map_key(release, false), None);
    }
}
