//! Drops explained in words: a real recording (HTTP through a Service, made on the lab)
//! replayed with one more packet that dies on cpu2, the node nettest's packets are routed
//! by, as the kernel reports it — on the host side of nettest's veth, with the reason and
//! the TTL the packet arrived with. The hint must say what the reason and the packet show.

use super::{
    Input,
    golden_tests::{correlate, inputs},
};
use crate::journey::{
    model::{HopKind, Verdict},
    observation::Hook,
};

/// The drop's hint, and its diagnosis, when a packet arriving with `ttl` is dropped with
/// `reason` where the recording's first request crossed nettest's veth into cpu2.
fn explained(reason: &str, ttl: u8) -> (String, String) {
    let mut inputs = inputs("healthy-service");
    let code = inputs
        .iter()
        .find_map(|input| match input {
            Input::DropReasons(reasons) => reasons
                .to_pairs()
                .into_iter()
                .find(|(_, name)| name == reason)
                .map(|(code, _)| code),
            _ => None,
        })
        .unwrap_or_else(|| panic!("the recording's kernel names {reason}"));
    let journeys = correlate(inputs.clone());
    let (veth, last_ns) = journeys
        .iter()
        .find_map(|c| {
            let at =
                c.journey.hops.iter().find(|h| {
                    h.kind == HopKind::VethCrossing && h.node.as_deref() == Some("cpu2")
                })?;
            let last = c.raw.observations.last()?.ts_ns;
            Some((c.raw.observations[at.observation?], last))
        })
        .expect("a packet crossed nettest's veth into cpu2");
    let dropped = crate::journey::observation::Observation {
        hook: Hook::Drop,
        ts_ns: last_ns + 1_000_000_000,
        // A packet of its own: no other in the recording has this IP ID.
        ip_id: 0xdead,
        ttl,
        drop_reason: code,
        ..veth
    };
    inputs.push(Input::Observations {
        now_ns: dropped.ts_ns,
        batch: vec![dropped],
    });
    let journey = correlate(inputs)
        .into_iter()
        .map(|c| c.journey)
        .find(|j| j.verdict == Verdict::Dropped)
        .expect("the packet is a dropped journey");
    let drop = journey.drop.expect("a dropped journey says why");
    assert_eq!(drop.reason.as_ref(), reason);
    assert_eq!(drop.node.as_deref(), Some("cpu2"));
    (drop.hint.to_string(), journey.diagnosis)
}

#[test]
fn a_packet_whose_ttl_ran_out_is_explained_as_one() {
    let (hint, diagnosis) = explained("IP_INHDR", 1);
    assert_eq!(
        hint,
        "its TTL ran out on cpu2 (it arrived with TTL 1): a routing loop, or a sender that set it \
         this low (traceroute does); cpu2 answers with ICMP time exceeded"
    );
    assert!(
        diagnosis.ends_with(&format!("{hint} (IP_INHDR)")),
        "{diagnosis}"
    );
    let (hint, _) = explained("IP_INHDR", 64);
    assert_eq!(
        hint,
        "cpu2 found its IPv4 header invalid (length, version or checksum)"
    );
}

/// A reason without a hint of its own is named once, beside a plain hint, not twice.
#[test]
fn a_reason_without_a_hint_of_its_own_is_named_once() {
    let (hint, diagnosis) = explained("IP_RPFILTER", 64);
    assert_eq!(hint, "the kernel dropped it");
    assert_eq!(diagnosis.matches("IP_RPFILTER").count(), 1, "{diagnosis}");
}
