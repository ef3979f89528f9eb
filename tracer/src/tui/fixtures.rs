//! Fixture journeys for the TUI tests: real ones, replayed from the golden recordings made
//! on the lab (`tests/data/recordings`, see `tests/data/README.md`), so a change in
//! explanation shows in the snapshots too. Sixteen of them, chosen for what the views must
//! draw — a Service request through DNAT and its reply with the un-DNAT, same-node pings,
//! the seed's incident (replies dropped on cpu1), a VXLAN journey, journeys that leave
//! what is traced or whose next hop was not observed — and laid out over half a minute of a
//! session (their ids and start times renumbered; everything else as explained).
//!
//! `tests/fixtures/journeys.jsonl` (for `examples/tui_demo.rs`) is written from [`generate`]
//! by the ignored test `write_fixture`
//! (`cargo test -p tracer --lib tui::fixtures::write_fixture -- --ignored`);
//! `fixture_matches_the_model` checks it still says what the recordings say.

use std::sync::OnceLock;

use crate::{
    clock::rfc3339,
    journey::model::{HopKind, Journey, SCHEMA_VERSION, Verdict},
    output::{Sink, Summary},
    pipeline::golden_tests::recording,
    replay,
};

/// The committed fixture, one journey per line.
pub const JOURNEYS_JSONL: &str = include_str!("../../../tests/fixtures/journeys.jsonl");

/// CLOCK_MONOTONIC of the first journey, and the wall clock at that moment
/// (2026-05-20T09:41:12Z).
const T0_NS: u64 = 7_251_000_000_000;
const WALL0_NS: i128 = 1_779_270_072_000_000_000;
const MS: u64 = 1_000_000;

/// Which journey of which recording each fixture is, and when it starts (ns after T0).
const CHOSEN: [(&str, u64, u64); 16] = [
    ("healthy-service", 1, 0),
    ("healthy-service", 2, 120_000),
    ("healthy-service", 3, 310_000),
    ("healthy-service", 4, 520_000),
    ("healthy-service", 6, MS + 870_000),
    ("healthy-service", 25, 2_500 * MS),
    ("healthy-service", 26, 2_500 * MS + 60_000),
    ("wrong-interface", 1, 5_000 * MS),
    ("wrong-interface", 2, 5_000 * MS + 130_000),
    ("wrong-interface", 4, 6_000 * MS),
    ("wrong-interface", 5, 6_000 * MS + 125_000),
    ("vxlan", 5, 14_200 * MS),
    ("partial-nodes", 1, 21_700 * MS),
    ("partial-nodes", 2, 22_710 * MS),
    ("healthy-service", 13, 31_400 * MS),
    ("healthy-service", 14, 31_400 * MS + 118_000),
];

/// Every journey of a recording, as replay explains them.
fn replayed(name: &str) -> Vec<Journey> {
    struct Keep(Vec<Journey>);
    impl Sink for Keep {
        fn journey(&mut self, journey: &Journey) -> std::io::Result<()> {
            self.0.push(journey.clone());
            Ok(())
        }
        fn finish(&mut self, _summary: &Summary) -> std::io::Result<()> {
            Ok(())
        }
        fn notice(&mut self, _text: &str) {}
    }
    let mut keep = Keep(Vec::new());
    replay::replay(&recording(name), &mut keep).expect("a golden recording replays");
    keep.0
}

/// The fixture journeys, in the order they complete.
pub fn generate() -> Vec<Journey> {
    let mut cache: Vec<(&str, Vec<Journey>)> = Vec::new();
    CHOSEN
        .iter()
        .zip(1..)
        .map(|(&(name, id, at), fixture_id)| {
            if !cache.iter().any(|(n, _)| *n == name) {
                cache.push((name, replayed(name)));
            }
            let journeys = &cache.iter().find(|(n, _)| *n == name).expect("cached").1;
            let mut journey = journeys
                .iter()
                .find(|j| j.id == id)
                .unwrap_or_else(|| panic!("{name} has no journey {id}"))
                .clone();
            journey.id = fixture_id;
            // Not part of the JSON schema: the fixture is what the JSON says.
            for hop in &mut journey.hops {
                hop.observation = None;
            }
            journey.start_ns = T0_NS + at;
            journey.started_at = rfc3339(WALL0_NS + i128::from(at));
            journey
        })
        .collect()
}

/// The fixture's journeys, parsed from the committed file.
pub fn journeys() -> Vec<Journey> {
    static PARSED: OnceLock<Vec<Journey>> = OnceLock::new();
    PARSED
        .get_or_init(|| {
            JOURNEYS_JSONL
                .lines()
                .map(|l| serde_json::from_str(l).expect("the fixture parses"))
                .collect()
        })
        .clone()
}

/// The fixture journey with this id.
pub fn journey(id: u64) -> Journey {
    journeys()
        .into_iter()
        .find(|j| j.id == id)
        .unwrap_or_else(|| panic!("no fixture journey {id}"))
}

fn render_jsonl(journeys: &[Journey]) -> String {
    let mut out = String::new();
    for j in journeys {
        out.push_str(&serde_json::to_string(j).expect("journeys serialize"));
        out.push('\n');
    }
    out
}

#[test]
#[ignore = "writes tests/fixtures/journeys.jsonl; run by hand after changing the generator"]
fn write_fixture() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/journeys.jsonl"
    );
    std::fs::write(path, render_jsonl(&generate())).expect("write the fixture");
}

#[test]
fn fixture_matches_the_model() {
    let parsed = journeys();
    assert_eq!(
        parsed,
        generate(),
        "regenerate with the ignored test write_fixture"
    );
    for j in &parsed {
        assert!(!j.hops.is_empty());
        assert_eq!(j.schema, SCHEMA_VERSION);
    }
    assert!(parsed.iter().any(|j| j.verdict == Verdict::Dropped));
    assert!(parsed.iter().any(|j| j.verdict == Verdict::Incomplete));
    assert!(
        parsed
            .iter()
            .flat_map(|j| &j.hops)
            .any(|h| h.kind == HopKind::NotObserved)
    );
}
