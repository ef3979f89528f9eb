//! Flows from the committed lab recordings (real sessions), and the duration spread.

use super::*;
use crate::pipeline::{Correlated, golden_tests::recording};

fn journeys(name: &str) -> Vec<Journey> {
    let mut out = Vec::new();
    let mut sink = crate::replay::Each(|_: &_, j: &Journey| {
        out.push(j.clone());
        true
    });
    crate::replay::replay(&recording(name), &mut sink).unwrap();
    out
}

fn table(journeys: &[Journey]) -> FlowTable {
    let mut table = FlowTable::default();
    for j in journeys {
        table.add(j);
    }
    table
}

/// Every journey counts once, in one path whose verdict and places are its own.
#[test]
fn every_journey_lands_in_exactly_one_path_of_its_own_verdict() {
    for name in [
        "healthy-service",
        "vxlan",
        "wrong-interface",
        "mtu-blackhole",
        "no-endpoints",
        "concurrent-pings",
        "routes-observed",
    ] {
        let journeys = journeys(name);
        let table = table(&journeys);
        let counted: u64 = table.records().map(|r| r.packets).sum();
        assert_eq!(counted, journeys.len() as u64, "{name}");
        for j in &journeys {
            let key = FlowKey::of(j);
            let steps = steps(j);
            let homes: Vec<_> = table
                .records()
                .filter(|r| *r.flow == key && r.steps == steps.as_slice())
                .collect();
            assert_eq!(homes.len(), 1, "{name} #{}", j.id);
            assert_eq!(homes[0].verdict, j.verdict, "{name} #{}", j.id);
        }
    }
}

/// Two HTTP connections through the Service, answered by two endpoints (one on another
/// node): one request flow and one reply flow, each with a path per endpoint; the pings to
/// the endpoint Pod are flows of their own.
#[test]
fn a_service_flow_has_a_path_per_endpoint_and_its_replies_go_with_it() {
    let table = table(&journeys("healthy-service"));
    let described: Vec<String> = table.flows().map(|(k, _)| k.describe()).collect();
    let request = table
        .flows()
        .find(|(k, _)| k.describe() == "tcp nettest → svc/nginx-test:80 (request)")
        .unwrap_or_else(|| panic!("{described:?}"));
    let reply = table
        .flows()
        .find(|(k, _)| k.describe() == "tcp svc/nginx-test:80 → nettest (reply)")
        .unwrap_or_else(|| panic!("{described:?}"));
    for (flow, paths) in [request, reply] {
        assert_eq!(paths.len(), 2, "{}: {paths:#?}", flow.describe());
        assert!(paths.iter().all(|p| p.verdict == Verdict::Delivered));
        let endpoints: Vec<bool> = paths
            .iter()
            .map(|p| p.steps.iter().any(|s| s.contains("10.244.184.84:80")))
            .collect();
        assert_ne!(endpoints[0], endpoints[1], "one path per endpoint");
    }
    let dnat = request.1[0]
        .steps
        .iter()
        .find(|s| s.contains("service DNAT"))
        .expect("the DNAT step");
    assert!(dnat.contains("10.109.60.89:80 → 10.244."), "{dnat}");
    let delivered = request.1[0].steps.last().unwrap();
    assert!(
        delivered.ends_with("delivered nginx-test-7d9c4b6f5-abcde")
            || delivered.ends_with("delivered nginx-test-7d9c4b6f5-x2k8p"),
        "{delivered}"
    );
    assert!(
        table
            .flows()
            .any(|(k, _)| k.protocol == "icmp" && k.port == 0),
        "{described:?}"
    );
    let text = table.text();
    assert!(text.contains("tcp nettest → svc/nginx-test:80 (request)\n  path 1: delivered · "));
}

/// The seed's incident: the replies die on cpu1. Their path is its own, dropped, with the
/// diagnosis, next to the delivered requests.
#[test]
fn a_drop_is_a_path_of_its_own_with_its_diagnosis() {
    let table = table(&journeys("wrong-interface"));
    let dropped: Vec<_> = table
        .records()
        .filter(|r| r.verdict == Verdict::Dropped)
        .collect();
    assert!(!dropped.is_empty(), "{}", table.text());
    for r in &dropped {
        assert_eq!(r.flow.direction, "reply");
        assert!(r.steps.iter().any(|s| s.contains("DROP")), "{:?}", r.steps);
        assert!(!r.diagnosis.is_empty());
    }
    assert!(
        table
            .records()
            .any(|r| r.verdict == Verdict::Delivered && r.flow.direction == "request")
    );
    assert!(table.text().contains("    ⇒ "), "{}", table.text());
}

#[test]
fn a_path_keeps_its_first_journey_and_its_newest() {
    let mut journeys = journeys("healthy-service");
    journeys.retain(|j| j.protocol == IpProto::Icmp && j.direction == Direction::Request);
    let template = journeys[0].clone();
    let mut table = FlowTable::default();
    for id in 1..=100 {
        table.add(&Journey {
            id,
            duration_ns: id * 1_000,
            length: 84,
            ..template.clone()
        });
    }
    let record = table.records().next().unwrap();
    assert_eq!(record.packets, 100);
    assert_eq!(record.bytes, 8_400);
    assert_eq!(record.journeys, [1, 93, 94, 95, 96, 97, 98, 99, 100]);
    let d = record.duration_ns;
    assert_eq!((d.min, d.max), (1_000, 100_000));
    // At most a bucket's width (a quarter of a power of two) above the true value.
    assert!((50_000..=57_344).contains(&d.p50), "{d:?}");
    assert!((99_000..=100_000).contains(&d.p99), "{d:?}");
}

#[test]
fn the_spread_is_exact_at_bucket_bounds_and_clamped_to_what_was_seen() {
    let mut spread = Spread::new();
    assert_eq!(spread.quantile(0.5), 0);
    for ns in [
        0,
        1,
        3,
        8,
        10,
        12,
        14,
        15,
        16,
        1 << 40,
        (1 << 40) - 1,
        u64::MAX,
    ] {
        let b = Spread::bucket(ns);
        assert!(b < BUCKETS);
        assert!(
            Spread::lower_bound(b) <= ns && ns <= Spread::upper_bound(b),
            "{ns}"
        );
        if ns >= 8 {
            // A quarter of a power of two wide.
            let width = Spread::upper_bound(b) - Spread::lower_bound(b) + 1;
            assert_eq!(width, 1 << (63 - ns.leading_zeros() - 2), "{ns}");
        }
    }
    spread.add(7_000);
    assert_eq!(spread.quantile(0.5), 7_000);
    assert_eq!(spread.quantile(0.99), 7_000);
}

/// `template` sent from the `i`-th of many unnamed addresses: a flow, and a path, of its own.
fn from_address(template: &Journey, i: u32) -> Journey {
    let mut j = template.clone();
    j.from.ip = Some(std::net::Ipv4Addr::from(0x0a00_0000 + i));
    (j.from.pod, j.from.node) = (None, None);
    j
}

/// Past [`MAX_PATHS`] paths, journeys on new paths are counted, not kept; known paths go on
/// counting.
#[test]
fn the_table_is_bounded() {
    let template = journeys("wrong-interface").remove(0);
    let from = |i: u32| from_address(&template, i);
    let mut table = FlowTable::default();
    for i in 0..=MAX_PATHS as u32 {
        table.add(&from(i));
    }
    assert_eq!(table.paths(), MAX_PATHS);
    assert_eq!(table.beyond(), 1);
    table.add(&from(0));
    assert_eq!((table.paths(), table.beyond()), (MAX_PATHS, 1));
    assert_eq!(table.records().next().unwrap().packets, 2);
    assert!(table.text().ends_with(&format!(
        "1 more journeys on paths past the first {MAX_PATHS}, not kept\n"
    )));
}

/// `--output json --flows` says in its closing line how large the table grew and how many
/// journeys it could not keep (a note for people too); without `--flows` neither appears.
#[test]
fn the_json_summary_states_the_table_and_what_it_left_out() {
    use crate::output::{Sink, Summary, json::JsonSink};
    let template = journeys("wrong-interface").remove(0);
    let summary_of = |flows: bool, extra_paths: u32| {
        let mut out = Vec::new();
        let mut sink = JsonSink::new(&mut out).with_flows(flows);
        for i in 0..extra_paths + MAX_PATHS as u32 {
            sink.journey(&from_address(&template, i)).unwrap();
        }
        sink.finish(&Summary::default()).unwrap();
        drop(sink);
        let last = String::from_utf8(out)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .to_owned();
        serde_json::from_str::<serde_json::Value>(&last).unwrap()["session_summary"].clone()
    };
    let summary = summary_of(true, 3);
    assert_eq!(
        summary["flows"],
        serde_json::json!({"flows": MAX_PATHS, "paths": MAX_PATHS, "journeys_not_kept": 3})
    );
    assert_eq!(
        summary["notes"][0],
        format!("3 more journeys on paths past the first {MAX_PATHS}, not kept")
    );
    let summary = summary_of(false, 3);
    assert!(summary.get("flows").is_none(), "{summary}");
    assert_eq!(summary["notes"], serde_json::json!([]));
}

/// A recording's journeys as a sampling session would have explained them: with the
/// places each packet was counted at.
fn correlated(name: &str) -> Vec<Correlated> {
    let mut out = Vec::new();
    let mut sink =
        crate::replay::Each(|raw: &crate::journey::assemble::RawJourney, j: &Journey| {
            let mut journey = j.clone();
            journey.counted_at =
                crate::journey::counted::CountedAt::of(&raw.observations).map(std::sync::Arc::new);
            out.push(Correlated {
                raw: raw.clone(),
                journey,
            });
            true
        });
    crate::replay::replay(&recording(name), &mut sink).unwrap();
    out
}

/// What a sampling kernel would have counted: every traced packet at each TC hook it
/// crossed, and `extra` untraced packets at every hook of `connection`'s journey.
fn counts_of(journeys: &[Correlated], connection: usize, extra: u64) -> HopCounts {
    let mut totals: HashMap<HopPlace, Crossed> = HashMap::new();
    for (i, c) in journeys.iter().enumerate() {
        for place in c.raw.observations.iter().filter_map(HopPlace::of) {
            let total = totals.entry(place).or_default();
            total.packets += 1;
            if i == connection {
                total.packets += extra;
            }
        }
    }
    HopCounts {
        sample_shift: 3,
        hops: totals.into_iter().collect(),
    }
}

/// A sampling session: the packets counted besides those traced go to the path whose
/// traced packets crossed the same places, and to no other; a place no traced packet
/// crossed is said, not guessed at.
#[test]
fn counted_packets_go_to_the_path_that_crossed_their_places() {
    let journeys = correlated("healthy-service");
    let first_request = journeys
        .iter()
        .position(|c| c.journey.direction == Direction::Request && c.journey.hops.len() > 3)
        .unwrap();
    let mut table = FlowTable::default();
    table.sampling(3);
    for c in &journeys {
        table.add(&c.journey);
    }
    let mut counts = counts_of(&journeys, first_request, 500);
    let stray = HopPlace {
        netns_cookie: 424_242,
        ifindex: 9,
        hook: crate::journey::observation::Hook::Egress,
        tuple: journeys[0].raw.observations[0].tuple,
    };
    counts.hops.push((
        stray,
        Crossed {
            packets: 7,
            bytes: 700,
        },
    ));
    table.hop_counts(&counts);
    let home_key = FlowKey::of(&journeys[first_request].journey);
    let home_steps = steps(&journeys[first_request].journey);
    for record in table.records() {
        let expected = if *record.flow == home_key && record.steps == home_steps.as_slice() {
            500
        } else {
            0
        };
        assert_eq!(
            record.more_counted,
            Some(expected),
            "{} path {}",
            record.flow.describe(),
            record.path
        );
    }
    assert_eq!(table.places_unattributed(), (1, 7));
    assert!(table.text().contains("counted at every hop besides: 500"));
    assert!(
        table
            .unattributed_note()
            .unwrap()
            .starts_with("7 hook crossings counted at 1 place no traced")
    );

    // A session that traced every packet says nothing about counting.
    let everything = table_of_correlated(&journeys);
    assert!(everything.records().all(|r| r.more_counted.is_none()));
    assert!(!everything.text().contains("counted"));
}

fn table_of_correlated(journeys: &[Correlated]) -> FlowTable {
    let mut table = FlowTable::default();
    for c in journeys {
        table.add(&c.journey);
    }
    table
}
