//! Replay hands the correlator what the live session handed it: the same journeys, in the
//! same order, however the live reads fell.

use std::{net::Ipv4Addr, sync::Arc};

use super::Recording;
use crate::{
    drop_reason::DropReasons,
    journey::{
        assemble::{CLOSE_AFTER_NS, RawJourney, tests::obs},
        observation::{Hook, Observation},
    },
    pipeline::{Correlator, Input, Session},
    record::{
        format::{OBSERVATIONS_PER_RECORD, Record},
        reader::{Reader, Step},
        writer::{Provenance, Recorder},
    },
    topology::Topology,
};

const MS: u64 = 1_000_000;

/// An observation of packet `ip_id` at `ts_us`, at the first or the second hop.
fn hop(ts_us: u64, ip_id: u16, second: bool) -> Observation {
    let (cookie, ifindex, hook) = if second {
        (2, 3, Hook::Ingress)
    } else {
        (1, 2, Hook::Egress)
    };
    let mut o = obs(
        ts_us,
        cookie,
        ifindex,
        hook,
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        80,
    );
    o.ip_id = ip_id;
    o
}

fn observations(now_ns: u64, batch: Vec<Observation>) -> Input {
    Input::Observations { now_ns, batch }
}

/// A session whose reads close packets in an order their ids do not give: A (id 1) goes
/// quiet after B (id 2), and a read that found nothing closes B alone; then one read too
/// large for one record, whose last observation joins a packet its first one started.
fn session_inputs() -> Vec<Input> {
    let mut inputs = vec![
        Input::Session(Arc::new(Session {
            from_ips: vec![Ipv4Addr::new(10, 0, 0, 1)],
            to_ips: vec![Ipv4Addr::new(10, 0, 0, 2)],
            ..Session::default()
        })),
        Input::DropReasons(Arc::new(DropReasons::default())),
        Input::Topology {
            since_ns: 0,
            topology: Arc::new(Topology::default()),
        },
        observations(
            150 * MS,
            vec![hop(0, 1, false), hop(1, 2, false), hop(100_000, 1, true)],
        ),
    ];
    // Reads that found nothing, every 50 ms: the one at 350 ms closes B, 400 ms closes A.
    for now_ms in [200, 250, 300, 350, 400, 450, 500, 550] {
        inputs.push(observations(now_ms * MS, Vec::new()));
    }
    let first_ms = 1_000;
    let mut large = vec![hop(first_ms * 1000, 100, false)];
    let filler = OBSERVATIONS_PER_RECORD as u16 + 70;
    large.extend((0..filler).map(|k| hop((first_ms + 290) * 1000, 200 + k, false)));
    large.push(hop((first_ms + 100) * 1000, 100, true));
    inputs.push(observations(
        first_ms * MS + CLOSE_AFTER_NS + 50 * MS,
        large,
    ));
    inputs.push(observations(2_000 * MS, Vec::new()));
    inputs
}

/// What the correlator hands on for `inputs`, in order.
fn correlate(inputs: impl IntoIterator<Item = Input>) -> Vec<RawJourney> {
    let mut correlator = Correlator::new();
    let mut out = Vec::new();
    for input in inputs {
        correlator.apply(input, &mut out);
    }
    correlator.finish(&mut out);
    out.into_iter().map(|c| c.raw).collect()
}

#[test]
fn replay_closes_packets_in_the_order_and_grouping_live_did() {
    let live = correlate(session_inputs());
    let ids: Vec<u64> = live.iter().map(|j| j.id).collect();
    assert_eq!(
        &ids[..2],
        &[2, 1],
        "the empty read at 350 ms closed B before A"
    );
    let c = live
        .iter()
        .find(|j| j.observations[0].ip_id == 100)
        .expect("packet C");
    assert_eq!(
        c.observations.len(),
        2,
        "C's hops in one read are one packet"
    );

    let path =
        std::env::temp_dir().join(format!("tracer-replay-order-{}.trace", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let file = std::fs::File::create(&path).expect("scratch recording");
    let provenance = Provenance {
        tracer_version: "test".into(),
        created_at: "2026-11-30T00:00:00.000000Z".into(),
        hostname: "test".into(),
        command: vec!["tracer".into()],
    };
    let mut recorder = Recorder::offline(file, &path, provenance).expect("recorder");
    for input in &session_inputs() {
        recorder.record(input);
    }
    recorder.finish();

    // Empty reads are kept only while a recorded packet could still be open: from 200 ms
    // to 400 ms (the one that closes A), and the one after C.
    let mut reader = Reader::open(&path).expect("recording");
    let mut empty_records = 0;
    loop {
        match reader.next_step() {
            Step::Record(Record::Observations { batch, .. }) => {
                empty_records += usize::from(batch.is_empty());
            }
            Step::Record(_) => {}
            Step::End { clean } => {
                assert!(clean);
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(empty_records, 5 + 1);

    let mut recording = Recording::open(&path).expect("recording");
    let replayed = correlate(std::iter::from_fn(|| recording.next_input()));
    let _ = std::fs::remove_file(&path);
    assert_eq!(replayed, live);
}
