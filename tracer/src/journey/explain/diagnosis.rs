//! The one line under every journey: where it went (or died) and why.

use std::fmt::Write as _;

use crate::{
    clock::format_duration,
    journey::model::{HopKind, Journey, Verdict},
};

/// `name` of a `namespace/name` the journey carries.
fn short_name(qualified: &str) -> &str {
    qualified.rsplit('/').next().unwrap_or(qualified)
}

/// Written into one string as it goes: a journey gets one, and a replay makes hundreds of
/// thousands (a `format!` per clause allocated a string each).
pub(super) fn diagnose(journey: &Journey) -> String {
    let mut out = String::with_capacity(160);
    match journey.verdict {
        Verdict::Delivered => {
            out.push_str("delivered to ");
            match journey.hops.last() {
                Some(last) if last.kind == HopKind::PodDelivery => match &last.pod {
                    Some(pod) => out.push_str(short_name(pod)),
                    None => journey.to.write_label(&mut out),
                },
                Some(last) => out.push_str(&last.note),
                None => {}
            }
            write_via(journey, &mut out);
            if let Some(encap) = journey.hops.iter().find_map(|h| h.encap.as_ref()) {
                let _ = write!(out, ", VXLAN VNI {}", encap.vni);
            }
            let observed = journey.hops.iter().filter(|h| h.observed).count();
            let _ = write!(
                out,
                " in {observed} observed hops, {}",
                format_duration(journey.duration_ns)
            );
        }
        Verdict::Dropped => {
            let drop = journey.drop.as_ref();
            let _ = write!(
                out,
                "dropped on {} at {}: {} ({})",
                drop.and_then(|d| d.node.as_deref()).unwrap_or("this host"),
                drop.and_then(|d| d.interface.as_deref()).unwrap_or("?"),
                drop.map(|d| d.hint.as_ref()).unwrap_or_default(),
                drop.map(|d| d.reason.as_ref()).unwrap_or_default()
            );
        }
        Verdict::Incomplete => {
            out.push_str("incomplete: ");
            let missing = journey
                .hops
                .iter()
                .rev()
                .find(|h| matches!(h.kind, HopKind::NotObserved | HopKind::LeftTracedScope));
            match missing {
                Some(hop) => out.push_str(&hop.note),
                None => out.push_str("the path ends without a delivery or a drop"),
            }
            write_via(journey, &mut out);
        }
    }
    out
}

/// ` via default/nginx-test → nginx-test-…-abcde, endpoint 1 of 3`: the Service DNAT, if any.
fn write_via(journey: &Journey, out: &mut String) {
    let Some(nat) = journey
        .hops
        .iter()
        .find(|h| h.kind == HopKind::ServiceDnat)
        .and_then(|h| h.nat.as_ref())
    else {
        return;
    };
    out.push_str(" via ");
    out.push_str(nat.service.as_deref().unwrap_or("DNAT"));
    out.push_str(" → ");
    match nat.endpoint_pod.as_deref() {
        Some(pod) => out.push_str(short_name(pod)),
        None => {
            let _ = write!(out, "{}", nat.after.dst);
        }
    }
    if let (Some(i), Some(t)) = (nat.endpoint_index, nat.endpoints_total) {
        let _ = write!(out, ", endpoint {i} of {t}");
    }
}
