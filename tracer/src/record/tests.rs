//! The recording format end to end: the real writer, the real reader, damage of every
//! kind, records at the size limit, and a recording made by an earlier tracer.

use std::{net::Ipv4Addr, path::Path, sync::Arc};

use super::{
    format::{FORMAT_VERSION, Record, kind},
    reader::{Reader, Step},
    writer::{Provenance, Recorder, tests::recorder_with_limit},
};
use crate::{
    drop_reason::DropReasons,
    journey::observation::{Hook, IpProto, Observation, Tuple},
    k8s::{
        ClusterModel, NodeInfo, PodInfo,
        model::{ModelRows, PodRow, Rank},
    },
    pipeline::{Input, Session},
    topology::Topology,
};

fn observation(i: u32) -> Observation {
    Observation {
        ts_ns: 1_000_000 + u64::from(i) * 1000,
        cpu: 0,
        hook: Hook::Egress,
        netns_cookie: 7,
        ifindex: 2,
        tuple: Tuple {
            proto: IpProto::Icmp,
            src: Ipv4Addr::new(10, 244, 102, 137),
            dst: Ipv4Addr::new(10, 244, 184, 84),
            sport: 0,
            dport: 0,
        },
        ip_id: i as u16,
        ip_len: 84,
        ttl: 64,
        dont_fragment: true,
        later_fragment: false,
        tcp_seq: 0,
        tcp_ack: 0,
        tcp_flags: 0,
        icmp_type: 8,
        icmp_code: 0,
        icmp_id: 1,
        icmp_seq: i as u16,
        payload_hash: 0,
        outer: None,
        drop_reason: 0,
        reason_unknown: false,
        shared_data: false,
        skb_len: 98,
        mark: 0,
        route: None,
        nat: None,
    }
}

fn session() -> Session {
    Session {
        following: "a → b".into(),
        names_from: "test".into(),
        from_ips: vec![Ipv4Addr::new(10, 244, 102, 137)],
        to_ips: vec![Ipv4Addr::new(10, 244, 184, 84)],
        ..Session::default()
    }
}

fn pod(i: u32) -> PodRow {
    PodRow {
        info: PodInfo {
            namespace: "default".into(),
            name: format!("pod-{i:05}"),
            ip: Some(Ipv4Addr::from(0x0af4_0000 + i)),
            node: Some("cpu1".into()),
            ready: true,
            owner: None,
            uid: format!("uid-{i}"),
        },
        phase: Some("Running".into()),
        host_network: false,
        rank: Rank::RunningReady,
        created: Some(1_700_000_000),
    }
}

/// A cluster of `pods` Pods (10.244.x.y) on one node.
fn cluster(pods: u32) -> ClusterModel {
    ClusterModel::from_rows(ModelRows {
        pods: (0..pods).map(pod).collect(),
        services: vec![],
        nodes: vec![NodeInfo {
            name: "cpu1".into(),
            internal_ips: vec![Ipv4Addr::new(172, 30, 1, 43)],
            pod_cidrs: vec![],
        }],
    })
}

fn private_file(path: &Path) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt as _;
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap()
}

fn scratch(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("tracer-rec-{}-{name}.trace", std::process::id()))
}

/// A complete recording written by the real recorder: `batches` batches of 10 observations.
pub fn sample_recording(path: &Path, batches: u32) {
    let mut recorder = Recorder::start(private_file(path), path, provenance()).unwrap();
    write_session(&mut recorder, batches, &cluster(3));
    recorder.finish();
}

fn provenance() -> Provenance {
    Provenance {
        tracer_version: "test".into(),
        created_at: "2026-11-29T00:00:00.000000Z".into(),
        hostname: "test".into(),
        command: vec!["tracer".into()],
    }
}

fn write_session(recorder: &mut Recorder, batches: u32, names: &ClusterModel) {
    recorder.record(&Input::Session(Arc::new(session())));
    recorder.record(&Input::DropReasons(Arc::new(DropReasons::from_recorded(
        vec![(2, "NO_SOCKET".into())],
    ))));
    recorder.record(&Input::Cluster {
        since_ns: 0,
        names: Arc::new(names.clone()),
    });
    recorder.record(&Input::Topology {
        since_ns: 0,
        topology: Arc::new(Topology::default()),
    });
    for b in 0..batches {
        let batch: Vec<_> = (0..10).map(|i| observation(b * 10 + i)).collect();
        recorder.record(&Input::Observations {
            now_ns: 2_000_000 + u64::from(b),
            batch,
        });
    }
}

/// Observations read, damaged stretches skipped, and how the reading ended.
fn read_all(path: &Path) -> (usize, u64, Step) {
    let Ok(mut reader) = Reader::open(path) else {
        return (0, 0, Step::End { clean: false });
    };
    let mut observations = 0;
    let mut skipped = 0;
    loop {
        match reader.next_step() {
            Step::Record(Record::Observations { batch, .. }) => observations += batch.len(),
            Step::Record(_) => {}
            Step::Skipped { .. } => skipped += 1,
            end => return (observations, skipped, end),
        }
    }
}

#[test]
fn a_complete_recording_reads_back_cleanly() {
    let path = scratch("complete");
    sample_recording(&path, 5);
    let (observations, skipped, end) = read_all(&path);
    assert_eq!((observations, skipped), (50, 0));
    assert!(matches!(end, Step::End { clean: true }), "{end:?}");
    let _ = std::fs::remove_file(&path);
}

/// Every truncation of a real recording: the reader recovers every complete record
/// before the cut and never reports a cut file clean.
#[test]
fn a_cut_recording_replays_up_to_the_cut() {
    let path = scratch("cut");
    sample_recording(&path, 3);
    let bytes = std::fs::read(&path).unwrap();
    let damaged = path.with_extension("cut");
    let mut last = 0;
    for len in (0..bytes.len()).step_by(7) {
        std::fs::write(&damaged, &bytes[..len]).unwrap();
        let (observations, _, end) = read_all(&damaged);
        assert!(observations >= last, "a longer prefix never yields fewer");
        last = observations;
        assert!(!matches!(end, Step::End { clean: true }), "cut at {len}");
    }
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&damaged);
}

/// One flipped byte anywhere costs at most the record it is in: the reader finds the next
/// intact record and says what it skipped.
#[test]
fn a_flipped_byte_costs_only_its_record() {
    let path = scratch("flip");
    sample_recording(&path, 20);
    let bytes = std::fs::read(&path).unwrap();
    let damaged = path.with_extension("flipped");
    for at in (16..bytes.len()).step_by(11) {
        let mut corrupt = bytes.clone();
        corrupt[at] ^= 0x5a;
        std::fs::write(&damaged, &corrupt).unwrap();
        let (observations, skipped, end) = read_all(&damaged);
        assert!(
            observations >= 190,
            "flip at {at}: {observations} of 200 observations"
        );
        assert!(skipped <= 1, "flip at {at}: {skipped} stretches skipped");
        assert!(
            observations == 200 || skipped == 1 || matches!(end, Step::Cut { .. }),
            "flip at {at}: the loss is reported ({end:?})"
        );
    }
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&damaged);
}

/// Context larger than a record may be is split, never written whole: with the limit
/// lowered to 16 KB, the names of 2,000 Pods the session's packets reach are written in
/// many records, every one under the limit, and replay names every address as live did.
#[test]
fn no_record_exceeds_the_limit_and_split_names_come_back_whole() {
    const LIMIT: usize = 16 * 1024;
    let path = scratch("limit");
    let mut recorder = recorder_with_limit(private_file(&path), &path, LIMIT);
    let names = cluster(2000);
    recorder.record(&Input::Session(Arc::new(session())));
    recorder.record(&Input::Cluster {
        since_ns: 0,
        names: Arc::new(names.clone()),
    });
    let batch: Vec<Observation> = names
        .pods()
        .enumerate()
        .map(|(i, pod)| {
            let mut obs = observation(u32::try_from(i).unwrap());
            obs.tuple.dst = pod.ip.unwrap();
            obs
        })
        .collect();
    recorder.record(&Input::Observations {
        now_ns: 5_000_000,
        batch,
    });
    recorder.finish();

    let bytes = std::fs::read(&path).unwrap();
    let mut at = 16;
    let mut names_records = 0;
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        assert!(len <= LIMIT, "a record of {len} bytes");
        names_records += usize::from(bytes[at + 8] == kind::NAMES);
        at += 9 + len + 4;
    }
    assert!(
        names_records > 10,
        "names split into {names_records} records"
    );
    let mut recording = crate::replay::Recording::open(&path).unwrap();
    let mut last = None;
    while let Some(input) = recording.next_input() {
        if let Input::Cluster { names, .. } = input {
            last = Some(names);
        }
    }
    let replayed = last.expect("names");
    assert_eq!(replayed.pods().count(), 2000);
    for pod in names.pods() {
        let ip = pod.ip.unwrap();
        assert_eq!(replayed.pod_by_ip(ip).map(|p| &p.name), Some(&pod.name));
    }
    let _ = std::fs::remove_file(&path);
}

/// A recording made by tracer 0.1.0 before the format's version 2 (committed under
/// `tests/data/`) still replays, named.
#[test]
fn a_version_1_recording_still_replays() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/v1-healthy-ping.trace");
    let reader = Reader::open(&path).unwrap();
    assert_eq!(reader.version(), 1);
    let mut journeys = Vec::new();
    let mut sink = crate::replay::Each(|_: &_, j: &crate::journey::model::Journey| {
        journeys.push(j.clone());
        true
    });
    let replayed = crate::replay::replay(&path, &mut sink).unwrap();
    assert!(!replayed.summary.failed);
    assert!(journeys.len() >= 2, "{} journeys", journeys.len());
    assert!(
        journeys
            .iter()
            .any(|j| j.from.pod.as_deref() == Some("default/nettest")),
        "named: {:?}",
        journeys.iter().map(|j| &j.from).collect::<Vec<_>>()
    );
}

/// A recording made by the tracer before format 4 (format 3: compact observations without
/// the UDP payload hash; TCP, ICMP and UDP journeys on the lab, committed under
/// `tests/data/`) replays to exactly the text that tracer printed for it.
#[test]
fn a_version_3_recording_replays_as_the_tracer_that_wrote_it_printed_it() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data");
    let path = data.join("v3-healthy-mixed.trace");
    assert_eq!(Reader::open(&path).unwrap().version(), 3);
    let mut text = Vec::new();
    let replayed =
        crate::replay::replay(&path, &mut crate::output::text::TextSink::new(&mut text)).unwrap();
    assert!(!replayed.summary.failed);
    let want = std::fs::read_to_string(data.join("v3-healthy-mixed.txt")).unwrap();
    let got = String::from_utf8(text).unwrap();
    assert!(want.contains(" udp "), "the recording has UDP journeys");
    assert_eq!(got, want);
}

#[test]
fn record_kinds_are_stable() {
    // Written in files: never renumber.
    assert_eq!(
        [
            kind::META,
            kind::CLUSTER,
            kind::TOPOLOGY,
            kind::DROP_REASONS,
            kind::OBSERVATIONS,
            kind::COUNTERS,
            kind::END,
            kind::NAMES,
            kind::NOTICE,
            kind::HOP_COUNTS
        ],
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    );
}

/// The lab recordings committed under `tests/data/recordings` (format 2; `sampled-udp`
/// format 4), sorted.
pub(super) fn committed_recordings() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/recordings");
    let mut files = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect::<Vec<_>>();
    files.sort();
    assert!(files.len() >= 9, "{files:?}");
    files
}

/// Every committed lab recording (format 2) written again by this recorder (format 4,
/// compact observations) replays to exactly the same journeys: the compact form keeps
/// everything replay uses, and format 2 keeps replaying. (Sizes: `compact::tests`.)
#[test]
fn every_format_2_recording_rewritten_in_the_current_format_replays_the_same() {
    let files = committed_recordings();
    let journeys_of = |path: &Path| {
        let mut out = Vec::new();
        let mut sink = crate::replay::Each(|_: &_, j: &crate::journey::model::Journey| {
            out.push(serde_json::to_string(j).unwrap());
            true
        });
        let replayed = crate::replay::replay(path, &mut sink).unwrap();
        assert!(!replayed.summary.failed, "{}", path.display());
        out
    };
    for old in files {
        // Format 2, but for the recordings made since with a newer feature (sampling).
        let version = Reader::open(&old).unwrap().version();
        assert!(
            version == 2 || version == FORMAT_VERSION,
            "{}: format {version}",
            old.display()
        );
        let new = scratch(&format!(
            "rewritten-{}",
            old.file_stem().unwrap().to_string_lossy()
        ));
        let _ = std::fs::remove_file(&new);
        let mut recorder = Recorder::offline(private_file(&new), &new, provenance()).unwrap();
        let mut recording = crate::replay::Recording::open(&old).unwrap();
        while let Some(input) = recording.next_input() {
            recorder.record(&input);
        }
        assert!(recorder.finish().error.is_none());
        assert_eq!(Reader::open(&new).unwrap().version(), FORMAT_VERSION);
        let expected = journeys_of(&old);
        assert!(!expected.is_empty(), "{}", old.display());
        assert_eq!(journeys_of(&new), expected, "{}", old.display());
        let _ = std::fs::remove_file(&new);
    }
}

/// Every input the fuzzer kept (`fuzz/corpus/reader`, committed) still reads to its end
/// through the very function the fuzz target runs: a reader change that breaks one of them,
/// or a target that no longer builds against the reader, shows here on every test run, not
/// only when someone fuzzes.
#[test]
fn every_input_of_the_fuzz_corpus_reads_to_its_end() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/reader");
    let mut inputs = 0;
    for entry in std::fs::read_dir(&corpus).expect("the committed fuzz corpus") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        super::reader::read_to_the_end(&data);
        inputs += 1;
    }
    // 246 when this test was written; the corpus only grows.
    assert!(inputs >= 200, "{inputs} inputs in {}", corpus.display());
}
