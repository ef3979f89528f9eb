//! The routing decision as the kernel made it (`tp_btf/fib_table_lookup`): the table looked
//! up, the gateway and output device chosen, or that nothing matched. An observed hop (●),
//! where the inferred one (~, [`super::Context::route_on`]) is the node's table read by
//! tracer. The tracepoint does not carry the matched prefix: it is named from the node's
//! table entry with that gateway and device that holds the destination, when there is one.

use super::Context;
use crate::journey::{
    model::{Hop, HopKind, RouteInfo, Text},
    observation::{Observation, RouteChoice},
};

/// The hop for a route lookup the kernel reported for this packet.
pub(super) fn observed(
    obs: &Observation,
    choice: RouteChoice,
    t: u64,
    node: Option<Text>,
    ctx: &Context<'_>,
) -> Hop {
    let route = ctx
        .memo
        .observed_route((obs.netns_cookie, obs.tuple.dst, choice), || {
            info(obs, choice, ctx)
        });
    let mut hop = Hop::new(HopKind::RouteDecision, t, node);
    hop.note = route.text.clone();
    hop.route = Some(route);
    hop
}

fn info(obs: &Observation, choice: RouteChoice, ctx: &Context<'_>) -> RouteInfo {
    let dst = obs.tuple.dst;
    let table = choice.table_name();
    let host = ctx.topology.host(obs.netns_cookie);
    let link = host.and_then(|h| h.info.link(choice.oif));
    let dev = link.map(|l| l.name.clone());
    let by = format!("table {table}, seen by fib_table_lookup");
    if choice.err != 0 {
        let kind = choice.outcome();
        let text = if kind == "none" {
            format!("no route to {dst} ({by})")
        } else {
            format!("{kind} route to {dst} ({by})")
        };
        return RouteInfo {
            prefix: None,
            gateway: None,
            dev: None,
            table: table.into(),
            protocol: None,
            kind: kind.into(),
            text: text.into(),
            mtu: None,
        };
    }
    let entry = host.and_then(|h| {
        h.info
            .routes
            .iter()
            .filter(|r| {
                r.table == table && r.contains(dst) && r.gateway == choice.gateway && r.dev == dev
            })
            .max_by_key(|r| r.prefix)
    });
    let dev_text = dev.clone().unwrap_or_else(|| format!("if{}", choice.oif));
    let text = match entry {
        Some(r) => format!("{} ({by})", r.describe()),
        None => match choice.gateway {
            Some(gw) => format!("{dst} via {gw} dev {dev_text} ({by})"),
            None => format!("{dst} dev {dev_text} ({by})"),
        },
    };
    RouteInfo {
        prefix: entry.map(|r| format!("{}/{}", r.dst, r.prefix).into()),
        gateway: choice.gateway,
        dev: dev.map(Text::from),
        table: table.into(),
        protocol: entry.map(|r| r.protocol.as_str().into()),
        kind: entry.map_or("unicast", |r| r.kind.as_str()).into(),
        text: text.into(),
        mtu: link.map(|l| l.mtu),
    }
}
