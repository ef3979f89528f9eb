//! Stitching per-node recordings: each committed lab recording (one kernel holding every
//! node) is split into one recording per node, as each node's agent would have written it,
//! by the real recorder; replaying the parts together must print the journeys the whole
//! recording prints, word for word.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::Arc,
};

use super::translate;
use crate::{
    journey::observation::Observation,
    output::json::JsonSink,
    pipeline::{Input, golden_tests},
    record::writer::{Provenance, Recorder},
    topology::{HostRole, Topology},
};

/// A directory of this test's own, removed with everything in it, also when the test fails.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tracer-merge-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The nodes a recording's first topology holds.
fn nodes_of(inputs: &[Input]) -> Vec<String> {
    inputs
        .iter()
        .find_map(|i| match i {
            Input::Topology { topology, .. } => Some(
                topology
                    .hosts
                    .iter()
                    .filter_map(|h| match &h.role {
                        HostRole::Node { name } => Some(name.clone()),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => None,
        })
        .unwrap_or_default()
}

/// The clock a part is written with: its kernel's boot, and how far its CLOCK_MONOTONIC is
/// ahead of the recording's (its wall clock agrees).
struct Clock {
    boot: &'static str,
    ahead_ns: u64,
    /// How far its wall clock is wrong (ahead): what time sync left.
    wall_wrong_ns: i64,
}

const ONE_KERNEL: Clock = Clock {
    boot: "one-lab-kernel",
    ahead_ns: 0,
    wall_wrong_ns: 0,
};

/// Writes what node `node`'s agent would have recorded of `inputs`: its namespaces, the
/// observations made in them (and those whose namespace is unknown, which every agent of a
/// shared kernel sees), every batch's read time; the counters and notices go to the first
/// node's recording only, so their sums stay those of the whole.
fn write_part(inputs: &[Input], node: &str, first: bool, path: &Path) {
    write_part_with(inputs, node, first, path, &ONE_KERNEL);
}

fn write_part_with(inputs: &[Input], node: &str, first: bool, path: &Path, clock: &Clock) {
    let ahead = |ns: u64| ns + clock.ahead_ns;
    let file = std::fs::File::create(path).unwrap();
    let mut recorder = Recorder::offline(file, path, Provenance::here()).unwrap();
    let mut mine: HashSet<u64> = HashSet::new();
    for input in inputs {
        let part = match input {
            Input::Session(session) => {
                let mut session = crate::pipeline::Session::clone(session);
                session.node = Some(node.to_owned());
                session.boot_id = Some(clock.boot.to_owned());
                session.wall_offset_ns -= i64::try_from(clock.ahead_ns).unwrap();
                session.wall_offset_ns += clock.wall_wrong_ns;
                Input::Session(Arc::new(session))
            }
            Input::Topology { since_ns, topology } => {
                let mut topology = Topology::clone(topology);
                topology.keep_node(node);
                mine = topology.hosts.iter().map(|h| h.info.cookie).collect();
                Input::Topology {
                    since_ns: ahead(*since_ns),
                    topology: Arc::new(topology),
                }
            }
            Input::Cluster { since_ns, names } => Input::Cluster {
                since_ns: ahead(*since_ns),
                names: names.clone(),
            },
            Input::Observations { now_ns, batch } => Input::Observations {
                now_ns: ahead(*now_ns),
                batch: batch
                    .iter()
                    .filter(|o| o.netns_cookie == 0 || mine.contains(&o.netns_cookie))
                    .map(|o| Observation {
                        ts_ns: ahead(o.ts_ns),
                        ..*o
                    })
                    .collect(),
            },
            Input::Counters(_) | Input::Notice { .. } if !first => continue,
            Input::Notice { at_ns, text } => Input::Notice {
                at_ns: ahead(*at_ns),
                text: text.clone(),
            },
            other => other.clone(),
        };
        recorder.record(&part);
    }
    recorder.finish();
}

/// The journey lines of `--output json` (the summary line names the files, so it differs).
fn journeys_json(replay: impl FnOnce(&mut JsonSink<&mut Vec<u8>>)) -> Vec<String> {
    let mut json = Vec::new();
    replay(&mut JsonSink::new(&mut json));
    String::from_utf8(json)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("{\"session_summary\""))
        .map(str::to_owned)
        .collect()
}

#[test]
fn per_node_recordings_stitched_give_the_journeys_of_one_recording_of_all_nodes() {
    for name in golden_tests::RECORDINGS {
        let inputs = golden_tests::inputs(name);
        let nodes = nodes_of(&inputs);
        assert!(nodes.len() >= 2, "{name}: {nodes:?}");
        // Every observation must belong to some node for the split to be whole.
        let scratch = Scratch::new(name);
        let parts: Vec<PathBuf> = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let path = scratch.0.join(format!("{node}.trace"));
                write_part(&inputs, node, i == 0, &path);
                path
            })
            .collect();

        let whole = journeys_json(|sink| {
            crate::replay::replay(&golden_tests::recording(name), sink).unwrap();
        });
        let mut summary = None;
        let stitched = journeys_json(|sink| {
            summary = Some(crate::replay::replay_all(&parts, sink).unwrap().summary);
        });
        assert!(!whole.is_empty(), "{name}");
        assert_eq!(
            whole.len(),
            stitched.len(),
            "{name}: journeys of the whole vs stitched from {nodes:?}"
        );
        for (w, s) in whole.iter().zip(&stitched) {
            assert_eq!(w, s, "{name}: a journey differs");
        }
        let summary = summary.unwrap();
        assert!(
            summary.notes[0].starts_with(&format!("stitched {} recordings", nodes.len()))
                && summary.notes[0].contains("one kernel, one clock"),
            "{name}: {:?}",
            summary.notes
        );
    }
}

#[test]
fn recordings_of_two_machines_are_put_on_one_timeline_by_their_wall_clocks() {
    let name = "vxlan";
    let inputs = golden_tests::inputs(name);
    let nodes = nodes_of(&inputs);
    let scratch = Scratch::new("two-machines");
    // Each node its own machine; one's monotonic clock 5 s ahead, its namespace cookies
    // numbered from the same counter (they must be kept apart all the same).
    let clocks = [
        Clock {
            boot: "machine-a",
            ahead_ns: 5_000_000_000,
            wall_wrong_ns: 0,
        },
        Clock {
            boot: "machine-b",
            ahead_ns: 0,
            wall_wrong_ns: 0,
        },
        Clock {
            boot: "machine-c",
            ahead_ns: 70_000,
            wall_wrong_ns: 0,
        },
    ];
    let parts: Vec<PathBuf> = nodes
        .iter()
        .zip(clocks.iter().cycle())
        .enumerate()
        .map(|(i, (node, clock))| {
            let path = scratch.0.join(format!("{node}.trace"));
            write_part_with(&inputs, node, i == 0, &path, clock);
            path
        })
        .collect();
    let whole = journeys_json(|sink| {
        crate::replay::replay(&golden_tests::recording(name), sink).unwrap();
    });
    let mut notes = Vec::new();
    let stitched = journeys_json(|sink| {
        notes = crate::replay::replay_all(&parts, sink)
            .unwrap()
            .summary
            .notes;
    });
    // The same journeys; their times may differ by the clock estimate's error.
    let sorted = |lines: &[String]| {
        let mut paths: Vec<String> = lines.iter().map(|l| path_of(l)).collect();
        paths.sort();
        paths
    };
    assert_eq!(sorted(&whole), sorted(&stitched));
    assert!(
        notes[0].contains("clocks aligned by each machine's wall clock"),
        "{notes:?}"
    );
}

#[test]
fn recordings_of_different_sessions_are_refused() {
    let scratch = Scratch::new("refused");
    let a = golden_tests::inputs("healthy-service");
    let b = golden_tests::inputs("concurrent-pings");
    let (pa, pb) = (scratch.0.join("a.trace"), scratch.0.join("b.trace"));
    write_part(&a, &nodes_of(&a)[0], true, &pa);
    write_part(&b, &nodes_of(&b)[0], true, &pb);
    let err = super::Merged::open(&[pa, pb]).err().expect("refused");
    assert!(
        err.to_string()
            .contains("only recordings of one session stitch"),
        "{err}"
    );
}

#[test]
fn one_recording_given_twice_is_refused() {
    let whole = golden_tests::recording("vxlan");
    let err = super::Merged::open(&[whole.clone(), whole])
        .err()
        .expect("refused");
    assert!(err.to_string().contains("is given twice"), "{err}");
}

#[test]
fn drop_reasons_of_two_kernels_meet_in_one_table() {
    let mut table = Vec::new();
    let first = translate(
        &mut table,
        vec![(2, "NO_SOCKET".into()), (5, "TCP_CSUM".into())],
    );
    assert_eq!(first[&2], 2);
    assert_eq!(first[&5], 5);
    // A newer kernel renumbered: NO_SOCKET is 3 there, and its 5 is another reason.
    let second = translate(
        &mut table,
        vec![(3, "NO_SOCKET".into()), (5, "OTHERHOST".into())],
    );
    assert_eq!(
        second[&3], 2,
        "the same name keeps the first kernel's value"
    );
    let otherhost = second[&5];
    assert!(otherhost >= super::TRANSLATED_REASONS, "{otherhost}");
    assert!(table.contains(&(otherhost, "OTHERHOST".to_owned())));
    assert!(table.contains(&(5, "TCP_CSUM".to_owned())));
}

#[test]
fn an_observation_every_agent_of_one_kernel_recorded_is_replayed_once() {
    let name = "healthy-service";
    let mut inputs = golden_tests::inputs(name);
    // A drop whose namespace the kernel could not tell: each node's agent keeps it.
    let batch = inputs
        .iter_mut()
        .find_map(|i| match i {
            Input::Observations { batch, .. } if !batch.is_empty() => Some(batch),
            _ => None,
        })
        .unwrap();
    let unknown = Observation {
        netns_cookie: 0,
        hook: crate::journey::observation::Hook::Drop,
        ..batch[0]
    };
    batch.push(unknown);
    // Each agent's program stamps it as it runs: a few microseconds apart.
    let stamped_by = |node: usize, batch: &mut Vec<Observation>| {
        for o in batch.iter_mut().filter(|o| o.netns_cookie == 0) {
            o.ts_ns += 3_000 * node as u64;
        }
    };
    // And the first node's kernel lost events: its loss is said with its name.
    inputs.push(Input::Counters(crate::pipeline::counters::SourceCounters {
        ringbuf_full: 7,
        failures_lost: Some(0),
        ..Default::default()
    }));
    let nodes = nodes_of(&inputs);
    let scratch = Scratch::new("duplicates");
    let parts: Vec<PathBuf> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let path = scratch.0.join(format!("{node}.trace"));
            let mut mine = inputs.clone();
            for input in &mut mine {
                if let Input::Observations { batch, .. } = input {
                    stamped_by(i, batch);
                }
            }
            write_part(&mine, node, i == 0, &path);
            path
        })
        .collect();
    let mut summary = None;
    journeys_json(|sink| {
        summary = Some(crate::replay::replay_all(&parts, sink).unwrap().summary);
    });
    let summary = summary.unwrap();
    let want = format!(
        "{} observations were in more than one recording",
        nodes.len() - 1
    );
    assert!(
        summary.notes.iter().any(|n| n.starts_with(&want)),
        "{:?}",
        summary.notes
    );
    let lost = format!("{}: 7 events lost in its kernel", nodes[0]);
    assert!(
        summary.notes.iter().any(|n| n.starts_with(&lost)),
        "{:?}",
        summary.notes
    );
    assert_eq!(summary.counters.source.ringbuf_full, 7);
    // Each recording's own account.
    assert_eq!(summary.sources.len(), nodes.len());
    assert_eq!(summary.sources[0].counters.ringbuf_full, 7);
    assert!(
        summary.sources[1..]
            .iter()
            .all(|s| s.counters.ringbuf_full == 0)
    );
    assert!(summary.sources.iter().all(|s| s.ended_cleanly));
    // Handed on once: the whole's observations and the one drop.
    let whole: u64 = golden_tests::inputs(name)
        .iter()
        .map(|i| match i {
            Input::Observations { batch, .. } => batch.len() as u64,
            _ => 0,
        })
        .sum();
    assert_eq!(summary.observations, whole + 1);
}

/// A journey as the user reads its path: the packet, its fate, and where each hop was.
fn path_of(line: &str) -> String {
    let journey: serde_json::Value = serde_json::from_str(line).unwrap();
    let hops: Vec<String> = journey["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| format!("{}:{}:{}", h["node"], h["kind"], h["interface"]))
        .collect();
    format!(
        "{} {} {} | {}",
        journey["summary"],
        journey["verdict"],
        journey["to"],
        hops.join(" ")
    )
}

#[test]
fn wall_clocks_that_disagree_are_corrected_by_the_packets_that_crossed() {
    for (name, skew_ns) in [("vxlan", 40_000_000), ("healthy-service", -25_000_000)] {
        let inputs = golden_tests::inputs(name);
        let nodes = nodes_of(&inputs);
        let scratch = Scratch::new(&format!("skewed-{name}"));
        // The first node's machine is the reference; every other's wall clock is wrong
        // by `skew_ns`, far more than a hop takes.
        let parts: Vec<PathBuf> = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let path = scratch.0.join(format!("{node}.trace"));
                let clock = Clock {
                    boot: ["machine-a", "machine-b", "machine-c"][i % 3],
                    ahead_ns: 1_000_000 * i as u64,
                    wall_wrong_ns: if i == 0 { 0 } else { skew_ns },
                };
                write_part_with(&inputs, node, i == 0, &path, &clock);
                path
            })
            .collect();
        let mut whole = Vec::new();
        crate::replay::replay(
            &golden_tests::recording(name),
            &mut JsonSink::new(&mut whole),
        )
        .unwrap();
        let mut stitched = Vec::new();
        let replayed =
            crate::replay::replay_all(&parts, &mut JsonSink::new(&mut stitched)).unwrap();
        let paths = |json: &[u8]| -> Vec<String> {
            let mut paths: Vec<String> = std::str::from_utf8(json)
                .unwrap()
                .lines()
                .filter(|l| !l.starts_with("{\"session_summary\""))
                .map(path_of)
                .collect();
            paths.sort();
            paths
        };
        assert_eq!(
            paths(&whole),
            paths(&stitched),
            "{name}: the same paths, in causal order"
        );
        let clocks = &replayed.summary.clocks;
        assert_eq!(clocks.len(), nodes.len() - 1, "{name}: {clocks:?}");
        // A machine no traced packet crossed to (no Service endpoint was chosen there) keeps
        // its wall clock, and says so.
        let compared: Vec<_> = clocks
            .iter()
            .filter(|c| c.crossings_there + c.crossings_back > 0)
            .collect();
        assert!(!compared.is_empty(), "{name}: {clocks:?}");
        for clock in compared {
            let error = clock
                .error_ns
                .unwrap_or_else(|| panic!("{name}: two-way: {clock:?}"));
            assert!(
                (clock.offset_ns - skew_ns).unsigned_abs() <= error && error < 1_000_000,
                "{name}: {clock:?} should find {skew_ns} ns"
            );
            assert_eq!(clock.reference, nodes[0]);
        }
        // Never a negative hop.
        for line in std::str::from_utf8(&stitched).unwrap().lines() {
            let journey: serde_json::Value = serde_json::from_str(line).unwrap();
            let Some(hops) = journey["hops"].as_array() else {
                continue;
            };
            let times: Vec<i64> = hops.iter().map(|h| h["t_ns"].as_i64().unwrap()).collect();
            assert!(times.windows(2).all(|w| w[0] <= w[1]), "{name}: {times:?}");
        }
        let summary_text = replayed.summary.text();
        assert!(
            summary_text.contains("beyond what the wall clocks say"),
            "{summary_text}"
        );
    }
}
