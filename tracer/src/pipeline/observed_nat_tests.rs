//! The NAT hook's reports explained: a real recording (made where no NAT hook attaches)
//! replayed with the rewrite the kernel would have reported added before each NAT it made,
//! as `nf_nat_manip_pkt` reports it — the packet before the rewrite, on the device it is on,
//! and the conntrack entry. The NAT hops must come out the same, named the same, but
//! observed and carrying the entry; every other hop unchanged.

use super::{
    Correlated, Input,
    golden_tests::{correlate, inputs},
};
use crate::journey::{
    model::{Endpoints, HopKind},
    observation::{Hook, NatManip, NatRewrite, Observation},
};

/// For each rewrite between two observations on one node: the observation before it, and
/// what the NAT hook would have reported just after.
fn reports(journeys: &[Correlated]) -> Vec<(Observation, Observation)> {
    let mut reports = Vec::new();
    for c in journeys {
        for pair in c.raw.observations.windows(2) {
            let (before, after) = (pair[0], pair[1]);
            if before.tuple == after.tuple || before.netns_cookie != after.netns_cookie {
                continue;
            }
            let dnat = before.tuple.dst != after.tuple.dst;
            let nat = if dnat {
                NatRewrite {
                    manip: NatManip::Destination,
                    reply_direction: false,
                    original: before.tuple,
                    reply: after.tuple.reversed(),
                }
            } else {
                NatRewrite {
                    manip: NatManip::Source,
                    reply_direction: true,
                    original: after.tuple.reversed(),
                    reply: before.tuple,
                }
            };
            let report = Observation {
                hook: Hook::Nat,
                ts_ns: before.ts_ns + 1,
                nat: Some(nat),
                ..before
            };
            assert_eq!(
                nat.apply(before.tuple),
                after.tuple,
                "the entry makes `after`"
            );
            reports.push((before, report));
        }
    }
    reports
}

/// `inputs` with each report added just after the observation it follows.
fn with_reports(inputs: Vec<Input>, reports: &[(Observation, Observation)]) -> Vec<Input> {
    inputs
        .into_iter()
        .map(|input| match input {
            Input::Observations { now_ns, batch } => {
                let mut out = Vec::with_capacity(batch.len());
                for obs in batch {
                    out.push(obs);
                    out.extend(
                        reports
                            .iter()
                            .filter(|(before, _)| *before == obs)
                            .map(|(_, report)| *report),
                    );
                }
                Input::Observations { now_ns, batch: out }
            }
            other => other,
        })
        .collect()
}

#[test]
fn a_reported_rewrite_makes_the_nat_hops_observed_with_their_conntrack_entry() {
    let inputs = inputs("healthy-service");
    let inferred = correlate(inputs.clone());
    let reports = reports(&inferred);
    let observed = correlate(with_reports(inputs, &reports));

    assert_eq!(
        observed.len(),
        inferred.len(),
        "each report joins its packet"
    );
    let nat_kinds = [
        HopKind::ServiceDnat,
        HopKind::ReplyUndnat,
        HopKind::Snat,
        HopKind::ReplyUnsnat,
    ];
    let mut seen = Vec::new();
    for (was, now) in inferred.iter().zip(&observed) {
        assert_eq!(was.journey.id, now.journey.id);
        assert_eq!(was.journey.verdict, now.journey.verdict);
        assert_eq!(
            was.journey.hops.len(),
            now.journey.hops.len(),
            "no hop more or less"
        );
        for (a, b) in was.journey.hops.iter().zip(&now.journey.hops) {
            assert_eq!(a.kind, b.kind);
            if !nat_kinds.contains(&a.kind) {
                let strip = |h: &crate::journey::model::Hop| {
                    let mut h = h.clone();
                    h.observation = None;
                    h
                };
                assert_eq!(strip(a), strip(b), "only NAT hops change");
                continue;
            }
            seen.push(a.kind);
            assert!(!a.observed && a.inferred_from.is_some());
            assert!(b.observed, "{b:?}");
            assert_eq!(b.inferred_from, None);
            let index = b.observation.expect("the report it was made from");
            assert_eq!(now.raw.observations[index].hook, Hook::Nat);
            assert_eq!(
                (&a.service, &a.pod, &a.packet),
                (&b.service, &b.pod, &b.packet)
            );
            let (na, nb) = (a.nat.clone().unwrap(), b.nat.clone().unwrap());
            assert_eq!(
                (na.before, na.after, na.chain, na.endpoint_index),
                (nb.before, nb.after, nb.chain, nb.endpoint_index)
            );
            let conntrack = nb.conntrack.expect("the conntrack entry");
            let rewrite = now.raw.observations[index].nat.unwrap();
            let as_endpoints = |t: crate::journey::observation::Tuple| Endpoints {
                src: t.src,
                sport: t.sport,
                dst: t.dst,
                dport: t.dport,
            };
            assert_eq!(conntrack.original, as_endpoints(rewrite.original));
            assert_eq!(conntrack.reply, as_endpoints(rewrite.reply));
            assert!(b.note.contains("conntrack "), "{}", b.note);
        }
    }
    assert!(seen.contains(&HopKind::ServiceDnat), "{seen:?}");
    assert!(seen.contains(&HopKind::ReplyUndnat), "{seen:?}");
}

/// A report whose conntrack tuples the kernel could not read (all zero: no rewrite, as
/// `Observation::from_kernel` makes it), or as a recording keeps it (a rewrite that changes
/// nothing), tells nothing: the journeys are exactly those inferred without the hook — no
/// NAT hop to 0.0.0.0, none observed.
#[test]
fn a_report_without_a_readable_entry_leaves_the_nat_hops_inferred() {
    let inputs = inputs("healthy-service");
    let inferred = correlate(inputs.clone());
    let reports = reports(&inferred);
    assert!(!reports.is_empty());
    let strip = |journeys: Vec<Correlated>| {
        journeys
            .into_iter()
            .map(|c| {
                let mut j = c.journey;
                for hop in &mut j.hops {
                    hop.observation = None;
                }
                serde_json::to_string(&j).unwrap()
            })
            .collect::<Vec<_>>()
    };
    let expected = strip(inferred);
    let unreadable: Vec<_> = reports
        .iter()
        .map(|(before, report)| {
            (
                *before,
                Observation {
                    nat: None,
                    ..*report
                },
            )
        })
        .collect();
    assert_eq!(
        strip(correlate(with_reports(inputs.clone(), &unreadable))),
        expected
    );
    let unchanged: Vec<_> = reports
        .iter()
        .map(|(before, report)| {
            let nat = NatRewrite {
                manip: NatManip::Destination,
                reply_direction: false,
                original: report.tuple,
                reply: report.tuple.reversed(),
            };
            (
                *before,
                Observation {
                    nat: Some(nat),
                    ..*report
                },
            )
        })
        .collect();
    assert_eq!(strip(correlate(with_reports(inputs, &unchanged))), expected);
}
