//! Pure tests of the UI state: ingest, retention, filter, pause, the playback clock, the
//! selection and stepping.

use std::time::Duration;

use super::*;
use crate::tui::fixtures;

fn header(mode: Mode) -> Header {
    Header {
        following: "nettest → svc/nginx-test".into(),
        mode,
        recording: None,
        source: "test".into(),
    }
}

fn feed(state: &mut State) {
    for j in fixtures::journeys() {
        state.apply(UiEvent::Journey(Box::new(j)));
    }
}

fn live() -> State {
    let mut s = State::new(header(Mode::Live));
    feed(&mut s);
    s
}

fn replay() -> State {
    let mut s = State::new(header(Mode::Replay));
    feed(&mut s);
    s
}

/// Journey ids in the list, top to bottom.
fn ids(s: &State) -> Vec<u64> {
    s.visible()
        .iter()
        .filter_map(|seq| s.journey(*seq))
        .map(|j| j.id)
        .collect()
}

fn selected_id(s: &State) -> Option<u64> {
    s.selected_journey().map(|j| j.id)
}

fn select_id(s: &mut State, id: u64) {
    s.handle(Action::Top);
    while selected_id(s) != Some(id) {
        let before = s.selection_index();
        s.handle(Action::Down);
        assert_ne!(
            before,
            s.selection_index(),
            "journey {id} is not in the list"
        );
    }
}

fn typed(s: &mut State, text: &str) {
    s.handle(Action::StartFilter);
    for c in text.chars() {
        s.handle(Action::FilterChar(c));
    }
}

const SEC: Duration = Duration::from_secs(1);

#[test]
fn live_journeys_show_as_they_arrive_and_the_selection_follows_the_newest() {
    let mut s = State::new(header(Mode::Live));
    assert_eq!(s.phase(), Phase::Live);
    assert!(s.selected().is_none());
    let journeys = fixtures::journeys();
    s.apply(UiEvent::Journey(Box::new(journeys[0].clone())));
    assert_eq!(selected_id(&s), Some(1));
    s.apply(UiEvent::Journey(Box::new(journeys[1].clone())));
    assert_eq!(ids(&s), vec![1, 2]);
    assert_eq!(selected_id(&s), Some(2));
    assert!(s.following());
    // Moving up stops following; new journeys no longer move the selection.
    s.handle(Action::Up);
    assert!(!s.following());
    s.apply(UiEvent::Journey(Box::new(journeys[2].clone())));
    assert_eq!(selected_id(&s), Some(1));
    // Bottom follows again.
    s.handle(Action::Bottom);
    assert!(s.following());
    assert_eq!(selected_id(&s), Some(3));
}

#[test]
fn counts_by_verdict_and_loss_and_notices() {
    let mut s = live();
    let c = s.counts();
    assert_eq!((c.delivered, c.dropped, c.incomplete), (12, 2, 2));
    assert_eq!(c.total(), 16);
    s.apply(UiEvent::Counters(counters(5, 1)));
    s.apply(UiEvent::Counters(counters(7, 1)));
    assert_eq!(
        s.counters().source.ringbuf_full,
        7,
        "counters carry totals, not increments"
    );
    s.apply(UiEvent::Notice(
        "recording: disk full, recording stopped".into(),
    ));
    assert_eq!(s.notices().len(), 1);
    s.apply(UiEvent::SourceEnded);
    assert_eq!(s.phase(), Phase::End);
}

#[test]
fn the_clocks_of_a_live_stitch_stay_in_the_header_not_among_warnings() {
    let mut s = live();
    s.apply(UiEvent::Notice(format!(
        "{}cpu2 −40.00 ms vs cpu1 (± 4.6 µs)",
        crate::replay::merge::CLOCKS_NOTICE
    )));
    assert_eq!(s.clocks(), Some("cpu2 −40.00 ms vs cpu1 (± 4.6 µs)"));
    assert!(s.notices().is_empty());
    s.apply(UiEvent::Notice("gpu1: agent lost".into()));
    assert_eq!(s.notices().len(), 1);
    assert!(s.clocks().is_some(), "a later notice does not replace it");
}

#[test]
fn retention_keeps_the_newest_and_counts_everything() {
    let mut s = State::with_retention(header(Mode::Live), 5);
    feed(&mut s);
    assert_eq!(ids(&s), vec![12, 13, 14, 15, 16]);
    assert_eq!(s.retention(), (5, 11));
    assert_eq!(s.held(), 5);
    assert_eq!(s.arrived(), 16);
    assert_eq!(s.counts().total(), 16);
}

#[test]
fn retention_moves_a_selection_that_is_let_go() {
    let mut s = State::with_retention(header(Mode::Live), 3);
    let journeys = fixtures::journeys();
    for j in &journeys[..3] {
        s.apply(UiEvent::Journey(Box::new(j.clone())));
    }
    s.handle(Action::Top);
    assert_eq!(selected_id(&s), Some(1));
    s.apply(UiEvent::Journey(Box::new(journeys[3].clone())));
    assert_eq!(ids(&s), vec![2, 3, 4]);
    assert_eq!(selected_id(&s), Some(2));
}

#[test]
fn filter_matches_names_verdicts_protocols_and_addresses() {
    let mut s = live();
    let cases: &[(&str, &[u64])] = &[
        ("dropped", &[9, 11]),
        ("IP_INNOROUTES", &[9, 11]),
        ("echo-reply", &[7, 9, 11]),
        ("icmp reply", &[7, 9, 11]),
        ("10.244.5.203", &[12, 13, 14]),
        ("gpu1", &[12, 13, 14]),
        ("q7w4n", &[12, 13, 14]),
        ("vxlan", &[12]),
        ("incomplete", &[13, 14]),
        ("x2k8p", &[6, 7, 15, 16]),
        ("svc/nginx-test syn", &[1, 15]),
        ("KUBE-SEP-3DGSCWRDZYIA2HSW", &[1, 3, 4]),
        ("40222", &[1, 2, 3, 4, 5]),
        ("nothing-like-this", &[]),
    ];
    for (text, want) in cases {
        s.handle(Action::FilterCancel);
        typed(&mut s, text);
        assert_eq!(ids(&s), want.to_vec(), "filter {text:?}");
    }
}

#[test]
fn filter_prompt_edits_live_enter_keeps_and_escape_clears() {
    let mut s = live();
    typed(&mut s, "dropx");
    assert!(ids(&s).is_empty());
    s.handle(Action::FilterBackspace);
    assert_eq!(ids(&s), vec![9, 11]);
    s.handle(Action::FilterAccept);
    assert!(s.prompt().is_none());
    assert_eq!(s.filter().text(), "drop");
    // New journeys go through the filter too.
    s.apply(UiEvent::Journey(Box::new(fixtures::journey(9))));
    assert_eq!(ids(&s), vec![9, 11, 9]);
    s.handle(Action::Back);
    assert!(s.filter().is_empty());
    assert_eq!(s.visible().len(), 17);
    typed(&mut s, "gpu1");
    s.handle(Action::FilterCancel);
    assert!(s.filter().is_empty() && s.prompt().is_none());
}

#[test]
fn pause_freezes_the_list_while_ingest_goes_on() {
    let mut s = State::new(header(Mode::Live));
    let journeys = fixtures::journeys();
    for j in &journeys[..4] {
        s.apply(UiEvent::Journey(Box::new(j.clone())));
    }
    s.handle(Action::TogglePause);
    for j in &journeys[4..10] {
        s.apply(UiEvent::Journey(Box::new(j.clone())));
    }
    assert_eq!(ids(&s), vec![1, 2, 3, 4]);
    assert_eq!(s.phase(), Phase::Paused { arrived: 6 });
    assert_eq!(s.counts().total(), 10, "counts go on while paused");
    assert_eq!(selected_id(&s), Some(4));
    s.handle(Action::TogglePause);
    assert_eq!(s.phase(), Phase::Live);
    assert_eq!(ids(&s), (1..=10).collect::<Vec<_>>());
    assert_eq!(selected_id(&s), Some(10), "still following");
    // The end of the source does not hide what waits behind a pause.
    s.handle(Action::TogglePause);
    s.apply(UiEvent::Journey(Box::new(journeys[10].clone())));
    s.apply(UiEvent::SourceEnded);
    assert_eq!(s.phase(), Phase::Paused { arrived: 1 });
    s.handle(Action::TogglePause);
    assert_eq!(s.phase(), Phase::End);
    assert_eq!(ids(&s).len(), 11);
}

#[test]
fn a_paused_list_is_not_eaten_away_by_retention() {
    let mut s = State::with_retention(header(Mode::Live), 10);
    let journeys = fixtures::journeys();
    for j in &journeys[..10] {
        s.apply(UiEvent::Journey(Box::new(j.clone())));
    }
    s.handle(Action::TogglePause);
    for j in &journeys[10..] {
        s.apply(UiEvent::Journey(Box::new(j.clone())));
    }
    assert_eq!(ids(&s), (1..=10).collect::<Vec<_>>(), "frozen as it was");
    assert_eq!(s.phase(), Phase::Paused { arrived: 6 });
    assert_eq!(s.held(), 12, "the list and the newest 2 that arrived");
    assert_eq!(s.retention(), (10, 4));
    s.handle(Action::TogglePause);
    assert_eq!(ids(&s), vec![3, 4, 5, 6, 7, 8, 9, 10, 15, 16]);
    assert_eq!(s.retention(), (10, 6));
    assert_eq!(s.arrived(), 16);
}

#[test]
fn the_playback_clock_shows_journeys_when_it_passes_them() {
    let mut s = replay();
    // The first journey shows at once; the rest wait for the clock.
    assert_eq!(ids(&s), vec![1]);
    assert_eq!(s.counts().total(), 1);
    assert_eq!(
        s.phase(),
        Phase::Replay {
            speed: "1.0×".into()
        }
    );
    s.tick(Duration::from_millis(1));
    assert_eq!(ids(&s), vec![1, 2, 3, 4]);
    s.tick(SEC * 3);
    assert_eq!(ids(&s), vec![1, 2, 3, 4, 5, 6, 7]);
    s.tick(SEC * 7);
    assert_eq!(ids(&s).len(), 11);
    assert_eq!(selected_id(&s), Some(11), "follows the newest");
    assert_eq!(s.counts().dropped, 2);
    assert!(!s.source_ended());
}

#[test]
fn speed_changes_how_fast_the_clock_runs() {
    let mut s = replay();
    s.handle(Action::Faster);
    s.handle(Action::Faster);
    assert_eq!(
        s.phase(),
        Phase::Replay {
            speed: "4.0×".into()
        }
    );
    s.tick(SEC * 2); // 8 s of recording
    assert_eq!(ids(&s).len(), 11);
    for _ in 0..10 {
        s.handle(Action::Faster);
    }
    assert_eq!(
        s.playback().map(Playback::speed_label).as_deref(),
        Some("64×")
    );
    for _ in 0..20 {
        s.handle(Action::Slower);
    }
    assert_eq!(
        s.playback().map(Playback::speed_label).as_deref(),
        Some("0.25×")
    );
    s.tick(SEC * 6); // 1 s of recording: nothing new before 14.2 s
    assert_eq!(ids(&s).len(), 11);
}

#[test]
fn seeking_moves_the_clock_and_the_list_both_ways() {
    let mut s = replay();
    s.handle(Action::SeekForward);
    assert_eq!(ids(&s).len(), 11, "10 s in: up to the second dropped reply");
    s.handle(Action::SeekForward);
    assert_eq!(ids(&s).len(), 12);
    s.handle(Action::SeekBack);
    assert_eq!(ids(&s).len(), 11);
    assert_eq!(s.counts().total(), 11, "counts follow the clock back");
    s.handle(Action::SeekBack);
    s.handle(Action::SeekBack);
    assert_eq!(ids(&s), vec![1], "never before the first journey");
    // Forward seeks stop at the latest journey read.
    for _ in 0..10 {
        s.handle(Action::SeekForward);
    }
    assert_eq!(ids(&s).len(), 16);
    assert_eq!(
        s.playback().and_then(Playback::progress_ns),
        Some((31_400_118_000, 31_400_118_000))
    );
}

#[test]
fn next_and_previous_journey() {
    let mut s = replay();
    s.handle(Action::NextJourney);
    assert_eq!(ids(&s), vec![1, 2]);
    assert_eq!(selected_id(&s), Some(2));
    s.handle(Action::NextJourney);
    s.handle(Action::NextJourney);
    assert_eq!(ids(&s), vec![1, 2, 3, 4]);
    s.handle(Action::PrevJourney);
    assert_eq!(ids(&s), vec![1, 2, 3]);
    assert_eq!(selected_id(&s), Some(3));
    s.handle(Action::PrevJourney);
    s.handle(Action::PrevJourney);
    assert_eq!(ids(&s), vec![1]);
    s.handle(Action::PrevJourney);
    assert_eq!(s.status(), Some("no earlier journey"));
}

#[test]
fn end_shows_everything_and_source_ended_ends_the_replay() {
    let mut s = replay();
    s.handle(Action::JumpToEnd);
    assert_eq!(ids(&s).len(), 16);
    assert!(matches!(s.phase(), Phase::Replay { .. }), "still reading");
    // More journeys read after End show at once.
    s.apply(UiEvent::Journey(Box::new(fixtures::journey(1))));
    assert_eq!(ids(&s).len(), 17);
    s.apply(UiEvent::SourceEnded);
    assert_eq!(s.phase(), Phase::End);
}

#[test]
fn replay_ends_when_the_clock_passes_the_last_journey() {
    let mut s = replay();
    s.apply(UiEvent::SourceEnded);
    assert!(matches!(s.phase(), Phase::Replay { .. }));
    s.tick(SEC * 40);
    assert_eq!(s.phase(), Phase::End);
    assert_eq!(ids(&s).len(), 16);
    // The clock stops at the last journey, so seeking back is relative to it.
    s.handle(Action::SeekBack);
    assert_eq!(ids(&s).len(), 12);
}

/// Counts read at `at_ns` of a place no journey crossed: what the flow view says of it.
fn counted_at(s: &mut State, at_ns: u64, packets: u64) {
    let counts = std::sync::Arc::new(crate::journey::counted::fake::read(4242, packets));
    s.apply(UiEvent::HopCounts { at_ns, counts });
}

fn crossings_shown(s: &State) -> u64 {
    s.flows().places_unattributed().1
}

/// A sampling replay's counts wait for the clock as journeys do, go back with a seek, and
/// are all shown once the replay is over (the last read follows the last journey).
#[test]
fn a_replays_counts_are_shown_on_its_clock() {
    let mut s = replay();
    s.apply(UiEvent::Sampling(6));
    let t0 = s.playback.as_ref().and_then(Playback::earliest).unwrap();
    counted_at(&mut s, t0 + 5_000_000_000, 10);
    counted_at(&mut s, t0 + 100_000_000_000, 25);
    assert_eq!(crossings_shown(&s), 0, "read 5 s into the recording");
    s.tick(SEC * 6);
    assert_eq!(crossings_shown(&s), 10);
    s.handle(Action::SeekBack);
    assert_eq!(crossings_shown(&s), 0, "back before the read");
    s.apply(UiEvent::SourceEnded);
    s.tick(SEC * 60);
    assert_eq!(s.phase(), Phase::End);
    assert_eq!(crossings_shown(&s), 25);
}

/// Live, counts are shown as they come.
#[test]
fn live_counts_are_shown_at_once() {
    let mut s = live();
    s.apply(UiEvent::Sampling(6));
    counted_at(&mut s, u64::MAX, 10);
    assert_eq!(crossings_shown(&s), 10);
}

#[test]
fn pausing_a_replay_stops_its_clock() {
    let mut s = replay();
    s.handle(Action::TogglePause);
    assert_eq!(
        s.phase(),
        Phase::ReplayPaused {
            speed: "1.0×".into()
        }
    );
    s.tick(SEC * 10);
    assert_eq!(ids(&s), vec![1]);
    s.handle(Action::TogglePause);
    s.tick(SEC * 11);
    assert_eq!(ids(&s).len(), 5, "only the time since resuming counts");
}

#[test]
fn replay_reads_ahead_only_so_far() {
    let mut s = State::new(header(Mode::Replay));
    let mut j = fixtures::journey(1);
    for i in 0..=READ_AHEAD as u64 {
        j.start_ns = 1_000_000_000 + i * 1_000_000_000;
        s.apply(UiEvent::Journey(Box::new(j.clone())));
    }
    assert!(!s.wants_more(), "{READ_AHEAD} journeys wait for the clock");
    s.tick(SEC * 5);
    assert!(s.wants_more());
    s.handle(Action::JumpToEnd);
    assert!(s.wants_more());
    assert!(State::new(header(Mode::Live)).wants_more());
}

#[test]
fn replay_only_actions_say_so_when_live() {
    let mut s = live();
    s.handle(Action::Faster);
    assert!(s.status().is_some_and(|m| m.starts_with("replay only")));
    s.handle(Action::SeekBack);
    assert!(s.status().is_some());
    s.handle(Action::Down);
    assert!(s.status().is_none());
    assert_eq!(ids(&s).len(), 16);
}

#[test]
fn next_drop_wraps_around() {
    let mut s = live();
    s.handle(Action::Top);
    s.handle(Action::NextDrop);
    assert_eq!(selected_id(&s), Some(9));
    s.handle(Action::NextDrop);
    assert_eq!(selected_id(&s), Some(11));
    s.handle(Action::NextDrop);
    assert_eq!(selected_id(&s), Some(9));
    assert!(!s.following());
    typed(&mut s, "tcp");
    s.handle(Action::FilterAccept);
    s.handle(Action::NextDrop);
    assert_eq!(s.status(), Some("no dropped journey in the list"));
}

#[test]
fn enter_focuses_the_path_and_arrows_move_among_hops() {
    let mut s = live();
    select_id(&mut s, 1);
    s.handle(Action::Open);
    assert_eq!(s.focus(), Focus::Path);
    assert!(!s.following(), "the inspected journey stays selected");
    s.apply(UiEvent::Journey(Box::new(fixtures::journey(2))));
    assert_eq!(selected_id(&s), Some(1));
    s.handle(Action::Down);
    s.handle(Action::Down);
    assert_eq!(s.hop_cursor(), 2);
    s.handle(Action::Bottom);
    assert_eq!(s.hop_cursor(), 8);
    s.handle(Action::Down);
    assert_eq!(s.hop_cursor(), 8, "stays on the last hop");
    s.handle(Action::Top);
    assert_eq!(s.hop_cursor(), 0);
    s.handle(Action::SwitchFocus);
    assert_eq!(s.focus(), Focus::List);
    s.handle(Action::Down);
    assert_eq!(selected_id(&s), Some(2));
    assert_eq!(s.hop_cursor(), 0, "a new selection starts at its first hop");
    s.handle(Action::Open);
    s.handle(Action::Back);
    assert_eq!(s.focus(), Focus::List);
}

#[test]
fn step_shows_one_more_hop_at_a_time() {
    let mut s = replay();
    s.tick(Duration::from_millis(1));
    select_id(&mut s, 1);
    s.handle(Action::StepHop);
    assert_eq!(s.stepping(), Some(0));
    assert_eq!(s.focus(), Focus::Path);
    assert!(
        matches!(s.phase(), Phase::ReplayPaused { .. }),
        "stepping pauses playback"
    );
    for want in 1..9 {
        s.handle(Action::StepHop);
        assert_eq!(s.stepping(), Some(want));
        assert_eq!(s.hop_cursor(), want);
    }
    // The cursor cannot go past the step.
    s.handle(Action::Up);
    s.handle(Action::Bottom);
    assert_eq!(s.hop_cursor(), 8);
    s.handle(Action::StepHop);
    assert_eq!(
        s.stepping(),
        None,
        "past the last hop, the whole path shows"
    );
    s.handle(Action::StepHop);
    s.handle(Action::StepHop);
    s.handle(Action::Back);
    assert_eq!(s.stepping(), None);
}

#[test]
fn help_swallows_keys_until_closed() {
    let mut s = live();
    s.handle(Action::Top);
    s.handle(Action::ToggleHelp);
    assert!(s.help_open());
    s.handle(Action::Down);
    assert_eq!(selected_id(&s), Some(1));
    s.handle(Action::ToggleHelp);
    assert!(!s.help_open());
    s.handle(Action::ToggleHelp);
    assert_eq!(s.handle(Action::Quit), Outcome::Quit);
}

#[test]
fn rate_is_journeys_per_second_of_the_last_seconds() {
    let mut s = State::new(header(Mode::Live));
    let j = fixtures::journey(1);
    for k in 0..20_u64 {
        s.tick(Duration::from_millis(100 * k));
        s.apply(UiEvent::Journey(Box::new(j.clone())));
    }
    s.tick(Duration::from_secs(2));
    assert!((s.rate() - 10.0).abs() < 0.01, "rate {}", s.rate());
    s.tick(Duration::from_secs(30));
    assert!(s.rate().abs() < f64::EPSILON);
}

fn counters(ringbuf_full: u64, parse_failed: u64) -> Counters {
    let mut counters = Counters::default();
    counters.source.ringbuf_full = ringbuf_full;
    counters.source.parse_failed = parse_failed;
    counters
}
