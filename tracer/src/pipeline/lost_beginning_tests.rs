//! A journey whose first hops were not seen: the seed's incident recorded on the lab,
//! replayed without the observations made inside the server Pod — as when the kernel
//! lost them to a full ring buffer. Each reply must still die on cpu1 for want of a route,
//! and say that it was not seen leaving the Pod, instead of seeming to start on its veth.

use std::collections::HashSet;

use super::{
    Input,
    golden_tests::{correlate, inputs},
};
use crate::{
    journey::model::{HopKind, Verdict},
    topology::HostRole,
};

const SERVER: &str = "nginx-test-7d9c4b6f5-abcde";

#[test]
fn a_reply_whose_first_hops_were_lost_says_they_were_not_seen() {
    let mut inputs = inputs("wrong-interface");
    let server: HashSet<u64> = inputs
        .iter()
        .filter_map(|input| match input {
            Input::Topology { topology, .. } => Some(topology),
            _ => None,
        })
        .flat_map(|topology| &topology.hosts)
        .filter(|h| matches!(&h.role, HostRole::Pod(p) if p.name == SERVER))
        .map(|h| h.info.cookie)
        .collect();
    assert!(!server.is_empty());
    for input in &mut inputs {
        if let Input::Observations { batch, .. } = input {
            batch.retain(|o| !server.contains(&o.netns_cookie));
        }
    }
    let journeys = correlate(inputs);
    let replies: Vec<_> = journeys
        .iter()
        .map(|c| &c.journey)
        .filter(|j| j.summary == "echo-reply")
        .collect();
    assert!(!replies.is_empty());
    for reply in replies {
        assert_eq!(reply.verdict, Verdict::Dropped, "{}", reply.diagnosis);
        let first = &reply.hops[0];
        assert_eq!(first.kind, HopKind::NotObserved, "{:?}", reply.hops);
        assert!(!first.observed);
        assert_eq!(first.node.as_deref(), Some("cpu1"));
        assert!(
            first
                .note
                .contains(&format!("expected to leave {SERVER} via eth0"))
                && first.note.contains("not observed"),
            "{}",
            first.note
        );
        assert_eq!(reply.drop.as_ref().unwrap().node.as_deref(), Some("cpu1"));
    }
    // The requests were seen from their start: nothing is said before their first hop.
    let requests = journeys
        .iter()
        .filter(|c| c.journey.summary == "echo-request");
    for request in requests {
        assert_ne!(request.journey.hops[0].kind, HopKind::NotObserved);
    }
}
