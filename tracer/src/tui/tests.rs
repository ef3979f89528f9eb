//! Snapshot tests of the views: the fixture journeys fed into a `State`, drawn on ratatui's
//! `TestBackend` at 80×24 and 120×40, compared with `snapshots/*.snap`. The snapshots are
//! the product: review them with your eyes when they change (`cargo insta review`, or
//! `INSTA_UPDATE=always cargo test` and `git diff`).

use std::{path::PathBuf, time::Duration};

use ratatui::{Terminal, backend::TestBackend, style::Color};

use super::{
    Header, Mode, UiEvent, fixtures,
    state::{Action, State},
    view::{self, Theme},
};

fn header(mode: Mode) -> Header {
    match mode {
        Mode::Live => Header {
            following: "nettest (default, 10.244.102.137, cpu2) → svc/nginx-test (10.109.60.89, 3 endpoints)".into(),
            mode,
            recording: Some(PathBuf::from("nettest.trace")),
            source: "Kubernetes API (kubeconfig /root/.kube/config)".into(),
        },
        Mode::Replay => Header {
            following: "nettest (default, 10.244.102.137, cpu2) → svc/nginx-test (10.109.60.89, 3 endpoints)".into(),
            mode,
            recording: None,
            source: "recording nettest.trace (cpu2, 2026-05-20 09:41 UTC)".into(),
        },
    }
}

fn state(mode: Mode) -> State {
    let mut s = State::new(header(mode));
    for j in fixtures::journeys() {
        s.apply(UiEvent::Journey(Box::new(j)));
    }
    s.tick(Duration::from_secs(4));
    s
}

fn select(s: &mut State, id: u64) {
    s.handle(Action::Top);
    while s.selected_journey().map(|j| j.id) != Some(id) {
        let before = s.selection_index();
        s.handle(Action::Down);
        assert_ne!(
            before,
            s.selection_index(),
            "journey {id} is not in the list"
        );
    }
}

fn open_at_hop(s: &mut State, id: u64, hop: usize) {
    select(s, id);
    s.handle(Action::Open);
    for _ in 0..hop {
        s.handle(Action::Down);
    }
}

fn terminal(state: &State, w: u16, h: u16, theme: Theme) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).expect("test backend");
    t.draw(|f| view::render(f, state, theme)).expect("draw");
    t
}

fn draw(state: &State, w: u16, h: u16) -> String {
    terminal(state, w, h, Theme::plain()).backend().to_string()
}

#[test]
fn live_list_80x24() {
    let mut s = state(Mode::Live);
    select(&mut s, 1);
    insta::assert_snapshot!(draw(&s, 80, 24));
}

#[test]
fn live_following_120x40() {
    let s = state(Mode::Live);
    insta::assert_snapshot!(draw(&s, 120, 40));
}

#[test]
fn path_service_dnat_80x24() {
    let mut s = state(Mode::Live);
    open_at_hop(&mut s, 1, 2);
    insta::assert_snapshot!(draw(&s, 80, 24));
}

#[test]
fn path_drop_80x24() {
    let mut s = state(Mode::Live);
    open_at_hop(&mut s, 9, 3);
    insta::assert_snapshot!(draw(&s, 80, 24));
}

#[test]
fn path_route_120x40() {
    let mut s = state(Mode::Live);
    open_at_hop(&mut s, 1, 3);
    insta::assert_snapshot!(draw(&s, 120, 40));
}

#[test]
fn path_reply_undnat_120x40() {
    let mut s = state(Mode::Live);
    open_at_hop(&mut s, 2, 5);
    insta::assert_snapshot!(draw(&s, 120, 40));
}

#[test]
fn path_vxlan_120x40() {
    let mut s = state(Mode::Live);
    open_at_hop(&mut s, 12, 4);
    insta::assert_snapshot!(draw(&s, 120, 40));
}

#[test]
fn path_left_traced_scope_120x40() {
    let mut s = state(Mode::Live);
    open_at_hop(&mut s, 13, 1);
    insta::assert_snapshot!(draw(&s, 120, 40));
}

#[test]
fn path_not_observed_80x24() {
    let mut s = state(Mode::Live);
    open_at_hop(&mut s, 14, 1);
    insta::assert_snapshot!(draw(&s, 80, 24));
}

#[test]
fn filter_prompt_80x24() {
    let mut s = state(Mode::Live);
    s.handle(Action::StartFilter);
    for c in "drop".chars() {
        s.handle(Action::FilterChar(c));
    }
    insta::assert_snapshot!(draw(&s, 80, 24));
}

#[test]
fn filter_matches_nothing_80x24() {
    let mut s = state(Mode::Live);
    s.handle(Action::StartFilter);
    for c in "sctp".chars() {
        s.handle(Action::FilterChar(c));
    }
    s.handle(Action::FilterAccept);
    insta::assert_snapshot!(draw(&s, 80, 24));
}

#[test]
fn paused_with_loss_and_notice_80x24() {
    let mut s = state(Mode::Live);
    select(&mut s, 11);
    s.handle(Action::TogglePause);
    s.apply(UiEvent::Journey(Box::new(fixtures::journey(15))));
    s.apply(UiEvent::Journey(Box::new(fixtures::journey(16))));
    s.apply(UiEvent::Counters(counters(12, 1)));
    s.apply(UiEvent::Notice(
        "recording: disk full, recording stopped".into(),
    ));
    insta::assert_snapshot!(draw(&s, 80, 24));
}

#[test]
fn help_80x24() {
    let mut s = state(Mode::Live);
    s.apply(UiEvent::Notice(
        "recording: disk full, recording stopped".into(),
    ));
    s.handle(Action::ToggleHelp);
    insta::assert_snapshot!(draw(&s, 80, 24));
}

#[test]
fn too_small_50x12() {
    let s = state(Mode::Live);
    insta::assert_snapshot!(draw(&s, 50, 12));
}

#[test]
fn waiting_for_packets_80x24() {
    let s = State::new(header(Mode::Live));
    insta::assert_snapshot!(draw(&s, 80, 24));
}

#[test]
fn replay_playing_120x40() {
    let mut s = State::new(header(Mode::Replay));
    for j in fixtures::journeys() {
        s.apply(UiEvent::Journey(Box::new(j)));
    }
    s.handle(Action::Faster);
    s.tick(Duration::from_secs(3)); // 6 s of recording
    insta::assert_snapshot!(draw(&s, 120, 40));
}

#[test]
fn replay_stepping_80x24() {
    let mut s = state(Mode::Replay);
    select(&mut s, 1);
    for _ in 0..4 {
        s.handle(Action::StepHop);
    }
    insta::assert_snapshot!(draw(&s, 80, 24));
}

#[test]
fn replay_end_80x24() {
    let mut s = state(Mode::Replay);
    s.apply(UiEvent::SourceEnded);
    s.handle(Action::JumpToEnd);
    insta::assert_snapshot!(draw(&s, 80, 24));
}

#[test]
fn drops_are_red_and_nothing_is_coloured_with_no_color() {
    let mut s = state(Mode::Live);
    select(&mut s, 9);
    s.handle(Action::Open);
    s.handle(Action::Bottom);
    let colored = terminal(&s, 120, 40, Theme::colored());
    let buffer = colored.backend().buffer();
    let red = buffer
        .content()
        .iter()
        .filter(|c| c.fg == Color::Red)
        .count();
    assert!(red > 20, "drop rows, the drop hop and its hint are red");

    let plain = terminal(&s, 120, 40, Theme::plain());
    let buffer = plain.backend().buffer();
    assert!(
        buffer
            .content()
            .iter()
            .all(|c| c.fg == Color::Reset && c.bg == Color::Reset),
        "NO_COLOR: no colour anywhere"
    );
    // The same symbols carry the meaning without colour.
    let text = plain.backend().to_string();
    assert!(text.contains("✗ DROP"));
    assert!(text.contains("~ route"));
}

fn counters(ringbuf_full: u64, parse_failed: u64) -> crate::pipeline::Counters {
    let mut counters = crate::pipeline::Counters::default();
    counters.source.ringbuf_full = ringbuf_full;
    counters.source.parse_failed = parse_failed;
    counters
}

/// The flow view over the fixture journeys (replays of the lab recordings): each flow, each
/// path with its figures and places; the cursor on the first path.
#[test]
fn flows_80x24() {
    let mut s = state(Mode::Live);
    s.handle(Action::ToggleFlows);
    insta::assert_snapshot!(draw(&s, 80, 24));
}

/// The cursor moved onto the first dropped path: the view scrolls to keep it on screen.
#[test]
fn flows_on_a_drop_120x40() {
    let mut s = state(Mode::Live);
    s.handle(Action::ToggleFlows);
    let dropped = (0..s.flows().paths())
        .find(|&i| {
            s.flows()
                .records()
                .nth(i)
                .is_some_and(|r| r.verdict == crate::journey::model::Verdict::Dropped)
        })
        .expect("a dropped path among the fixtures");
    for _ in 0..dropped {
        s.handle(Action::Down);
    }
    assert_eq!(s.flow_cursor(), dropped);
    insta::assert_snapshot!(draw(&s, 120, 40));
}

/// Enter on a path lists exactly that path's journeys; Esc lists them all again.
#[test]
fn flow_path_journeys_80x24() {
    let mut s = state(Mode::Live);
    let all = s.visible().len();
    s.handle(Action::ToggleFlows);
    s.handle(Action::Open);
    let record = s.flows().records().next().expect("a path");
    let expected: Vec<u64> = fixtures::journeys()
        .iter()
        .filter(|j| s.path_filter().is_some_and(|p| p.matches(j)))
        .map(|j| j.id)
        .collect();
    assert_eq!(expected.len() as u64, record.packets);
    let listed: Vec<u64> = s
        .visible()
        .iter()
        .filter_map(|seq| s.journey(*seq).map(|j| j.id))
        .collect();
    assert_eq!(listed, expected);
    insta::assert_snapshot!(draw(&s, 80, 24));
    s.handle(Action::Back);
    assert_eq!(s.visible().len(), all);
    assert!(s.path_filter().is_none());
}

/// A replay's flow view counts what the playback clock has shown, and a seek back recounts.
#[test]
fn replay_flows_follow_the_playback_clock() {
    let mut s = State::new(header(Mode::Replay));
    for j in fixtures::journeys() {
        s.apply(UiEvent::Journey(Box::new(j)));
    }
    s.apply(UiEvent::SourceEnded);
    s.handle(Action::ToggleFlows);
    let counted = |s: &State| s.flows().records().map(|r| r.packets).sum::<u64>();
    assert_eq!(counted(&s), s.counts().total());
    s.handle(Action::JumpToEnd);
    let all = counted(&s);
    assert_eq!(all, fixtures::journeys().len() as u64);
    insta::assert_snapshot!("replay_flows_end_120x40", draw(&s, 120, 40));
    s.handle(Action::SeekBack);
    s.handle(Action::SeekBack);
    assert!(
        counted(&s) < all,
        "a seek back recounts: {} of {all}",
        counted(&s)
    );
    assert_eq!(counted(&s), s.counts().total());
}

/// A sampled session (the committed `sampled-udp` recording, `--sample 16`) replayed into
/// the UI: the flow view gives each path the packets counted besides those traced, as
/// `--flows` prints them, and keeps them through a seek.
#[test]
fn replay_flows_of_a_sampled_session_show_what_was_counted() {
    let (tx, rx) = std::sync::mpsc::sync_channel(1 << 16);
    let recording = crate::pipeline::golden_tests::recording("sampled-udp");
    let mut sink = crate::output::ui::UiSink::replay(tx);
    crate::replay::replay(&recording, &mut sink).unwrap();
    drop(sink);
    let mut s = State::new(header(Mode::Replay));
    for event in rx.try_iter() {
        s.apply(event);
    }
    s.handle(Action::ToggleFlows);
    let more = |s: &State| {
        s.flows()
            .records()
            .filter_map(|r| r.more_counted)
            .collect::<Vec<_>>()
    };
    // The clock is at the first journey: the counts read later wait for it.
    let at_start: u64 = more(&s).iter().sum();
    s.handle(Action::JumpToEnd);
    let at_end = more(&s);
    assert!(
        at_start < at_end.iter().sum(),
        "{at_start} counted at the start, {at_end:?} at the end"
    );
    assert!(at_end.iter().any(|&m| m > 1000), "{at_end:?}");
    let screen = draw(&s, 120, 40);
    assert!(screen.contains("counted"), "{screen}");
    insta::assert_snapshot!("replay_flows_sampled_120x40", screen);
    s.handle(Action::SeekBack);
    s.handle(Action::SeekBack);
    let back: u64 = more(&s).iter().sum();
    assert!(back < at_end.iter().sum(), "a seek back takes back counts");
    s.handle(Action::JumpToEnd);
    assert_eq!(more(&s), at_end, "and the end shows them all again");
}
