//! The one line under every journey: where it went (or died) and why.

use crate::{
    clock::format_duration,
    journey::model::{HopKind, Journey, Verdict},
};

/// `name` of a `namespace/name` the journey carries.
fn short_name(qualified: &str) -> &str {
    qualified.rsplit('/').next().unwrap_or(qualified)
}

pub(super) fn diagnose(journey: &Journey) -> String {
    let observed = journey.hops.iter().filter(|h| h.observed).count();
    let took = format_duration(journey.duration_ns);
    let dnat = journey
        .hops
        .iter()
        .find(|h| h.kind == HopKind::ServiceDnat)
        .and_then(|h| h.nat.as_ref());
    let via = dnat
        .map(|n| {
            let endpoint = n
                .endpoint_pod
                .as_deref()
                .map_or_else(|| n.after.dst.to_string(), |p| short_name(p).to_owned());
            let position = match (n.endpoint_index, n.endpoints_total) {
                (Some(i), Some(t)) => format!(", endpoint {i} of {t}"),
                _ => String::new(),
            };
            format!(
                " via {} → {endpoint}{position}",
                n.service.as_deref().unwrap_or("DNAT")
            )
        })
        .unwrap_or_default();
    let tunnel = journey
        .hops
        .iter()
        .find_map(|h| h.encap.as_ref())
        .map(|e| format!(", VXLAN VNI {}", e.vni))
        .unwrap_or_default();
    match journey.verdict {
        Verdict::Delivered => {
            let last = journey.hops.last();
            let target = match last.map(|h| h.kind) {
                Some(HopKind::PodDelivery) => last
                    .and_then(|h| h.pod.clone())
                    .map_or_else(|| journey.to.label(), |p| short_name(&p).to_owned()),
                _ => last.map(|h| h.note.to_string()).unwrap_or_default(),
            };
            format!("delivered to {target}{via}{tunnel} in {observed} observed hops, {took}")
        }
        Verdict::Dropped => {
            let drop = journey.drop.as_ref();
            format!(
                "dropped on {} at {}: {} ({})",
                drop.and_then(|d| d.node.clone())
                    .unwrap_or_else(|| "this host".into()),
                drop.and_then(|d| d.interface.clone())
                    .unwrap_or_else(|| "?".into()),
                drop.map(|d| d.hint.clone()).unwrap_or_default(),
                drop.map(|d| d.reason.clone()).unwrap_or_default()
            )
        }
        Verdict::Incomplete => {
            let missing = journey
                .hops
                .iter()
                .rev()
                .find(|h| matches!(h.kind, HopKind::NotObserved | HopKind::LeftTracedScope));
            format!(
                "incomplete: {}{via}",
                missing.map_or_else(
                    || "the path ends without a delivery or a drop".to_owned(),
                    |h| h.note.to_string()
                )
            )
        }
    }
}
