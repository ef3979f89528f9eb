//! Golden tests of what users read: real recordings made on the lab (committed under
//! `tests/data/recordings/`, how in `tests/data/README.md`) replayed through the pipeline
//! into the JSON and text outputs, compared byte for byte with the committed outputs under
//! `tests/data/golden/`. A change in a hop's wording, a name, a verdict or a diagnosis fails
//! here, without root. When a change is meant, regenerate with
//! `UPDATE_GOLDEN=1 cargo test --lib golden` and review the diff.

use std::path::{Path, PathBuf};

use super::{Correlated, Correlator, Input};
use crate::{
    output::{json::JsonSink, text::TextSink},
    replay::{self, Recording},
};

/// The recordings, one per path the product must explain.
pub const RECORDINGS: [&str; 11] = [
    "healthy-service",
    "vxlan",
    "wrong-interface",
    "mtu-blackhole",
    "no-endpoints",
    "bridge-cni",
    "concurrent-pings",
    "partial-nodes",
    // Routing decisions observed by the fib_table_lookup tracepoint; the others are TC
    // mode, routes inferred.
    "routes-observed",
    "routes-observed-wrong-interface",
    // `--sample 16`: one UDP datagram in 16 traced, all counted.
    "sampled-udp",
];

pub fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data")
}

pub fn recording(name: &str) -> PathBuf {
    data().join("recordings").join(format!("{name}.trace"))
}

/// Everything a committed recording feeds the pipeline, in order.
pub fn inputs(name: &str) -> Vec<Input> {
    let mut recording = Recording::open(&recording(name)).expect("golden recording");
    std::iter::from_fn(|| recording.next_input()).collect()
}

/// The journeys `inputs` make, with their raw observations.
pub fn correlate(inputs: Vec<Input>) -> Vec<Correlated> {
    let mut correlator = Correlator::new();
    let mut out = Vec::new();
    for input in inputs {
        correlator.apply(input, &mut out);
    }
    correlator.finish(&mut out);
    out
}

/// The recording's journeys as `--output json` and `--output text` print them.
fn outputs(name: &str) -> (String, String) {
    let path = recording(name);
    // A sampled session's counts are in its flows.
    let flows = name.starts_with("sampled");
    let mut json = Vec::new();
    replay::replay(&path, &mut JsonSink::new(&mut json).with_flows(flows)).unwrap();
    let mut text = Vec::new();
    replay::replay(&path, &mut TextSink::new(&mut text).with_flows(flows)).unwrap();
    (
        String::from_utf8(json).unwrap(),
        String::from_utf8(text).unwrap(),
    )
}

/// The first line where two texts differ, for the failure message.
fn first_difference(want: &str, got: &str) -> String {
    for (i, (w, g)) in want.lines().zip(got.lines()).enumerate() {
        if w != g {
            return format!("line {}:\n  want: {w}\n  got:  {g}", i + 1);
        }
    }
    format!(
        "lengths differ: {} lines wanted, {} got",
        want.lines().count(),
        got.lines().count()
    )
}

#[test]
fn every_recording_explains_as_its_golden_output_says() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    for name in RECORDINGS {
        let size = std::fs::metadata(recording(name)).unwrap().len();
        assert!(size < 100 * 1024, "{name}: {size} bytes, keep it small");
        let (json, text) = outputs(name);
        for (extension, got) in [("jsonl", json), ("txt", text)] {
            let golden = data().join("golden").join(format!("{name}.{extension}"));
            if update {
                std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
                std::fs::write(&golden, &got).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&golden)
                .unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
            if want != got {
                failures.push(format!(
                    "{name}.{extension}: {}",
                    first_difference(&want, &got)
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "explanations changed (UPDATE_GOLDEN=1 to accept, then review the diff):\n{}",
        failures.join("\n")
    );
}
