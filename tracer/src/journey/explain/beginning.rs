//! What came before the first observation: a packet sent by a followed Pod is first seen
//! leaving that Pod (its `eth0` is hooked). When its first observation is elsewhere, the
//! hops before it were not seen — the session started while it was in flight, or the
//! kernel lost their events when its ring buffer was full — and the journey says so
//! instead of starting as if the packet had appeared there.

use super::Context;
use crate::{
    journey::{
        model::{Hop, HopKind},
        observation::{Hook, Observation},
    },
    topology::HostRole,
};

pub(super) fn before(first: &Observation, ctx: &Context<'_>) -> Option<Hop> {
    let src = first.tuple.src;
    if !ctx.followed.from.contains(&src) && !ctx.followed.to.contains(&src) {
        return None;
    }
    let (host, pod) = ctx.topology.hosts.iter().find_map(|h| match &h.role {
        HostRole::Pod(pod) if pod.ip == src => Some((h, pod)),
        _ => None,
    })?;
    if host.info.cookie == first.netns_cookie {
        return None;
    }
    let mut hop = Hop::new(HopKind::NotObserved, 0, pod.node.clone().map(Into::into));
    hop.observed = false;
    hop.pod = Some(pod.qualified().into());
    let why = if ctx.followed.sample_shift > 0 && first.hook == Hook::Drop {
        // Drops are traced whatever the sample chose; the hops before were only counted.
        format!(
            "sampled: about one packet in {} is traced hop by hop, the others only counted until they are dropped",
            1u64 << ctx.followed.sample_shift
        )
    } else {
        "the session started while it was in flight, or the kernel lost those events".to_owned()
    };
    hop.note = format!(
        "expected to leave {} via {}; not observed, nor anything before the next hop ({why})",
        pod.name, pod.eth
    )
    .into();
    Some(hop)
}
