//! What explanation reads the world through: the cluster's names (behind [`ClusterNames`]),
//! the topology, the drop-reason names, which side is FROM, and the memo that builds each
//! name, route and hop once.

use std::net::Ipv4Addr;

use crate::{
    drop_reason::DropReasons,
    journey::{
        memo::Memo,
        model::{Named, RouteInfo, Text},
        observation::{IpProto, Observation},
    },
    k8s::ObjectName,
    topology::Topology,
};

/// A Service as naming needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRef {
    pub name: ObjectName,
    pub ready_endpoints: usize,
}

/// A Pod as naming needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodName {
    pub name: ObjectName,
    pub node: Option<String>,
}

/// What explanation needs to know about the cluster; implemented by the cluster model
/// ([`crate::journey::naming::ModelNames`]).
pub trait ClusterNames {
    /// The Pod with this IP.
    fn pod_by_ip(&self, ip: Ipv4Addr) -> Option<PodName>;
    /// The Service whose ClusterIP:port this is.
    fn service_by_cluster_ip(&self, ip: Ipv4Addr, port: u16, proto: IpProto) -> Option<ServiceRef>;
    /// The Service exposing this NodePort.
    fn service_by_node_port(&self, port: u16, proto: IpProto) -> Option<ServiceRef>;
    /// "endpoint 2 of 3": 1-based position of ip:port among the Service's ready endpoints.
    fn endpoint_position(
        &self,
        service: &ObjectName,
        ip: Ipv4Addr,
        port: u16,
    ) -> Option<(usize, usize)>;
    fn node_by_ip(&self, ip: Ipv4Addr) -> Option<String>;
}

/// Which addresses the user asked to follow, to tell requests from replies.
#[derive(Debug, Clone, Default)]
pub struct Followed {
    pub from: Vec<Ipv4Addr>,
    pub to: Vec<Ipv4Addr>,
    /// The session traced one packet in `2^sample_shift` (0: every one): a packet seen
    /// first where it died may have been counted, not traced, before.
    pub sample_shift: u8,
}

pub struct Context<'a> {
    pub topology: &'a Topology,
    pub cluster: &'a dyn ClusterNames,
    pub reasons: &'a DropReasons,
    pub followed: &'a Followed,
    /// Names, routes and hops already explained, shared across journeys.
    pub memo: &'a Memo,
    /// Wall-clock nanoseconds minus CLOCK_MONOTONIC nanoseconds.
    pub wall_offset_ns: i128,
}

impl Context<'_> {
    /// The Service whose address this is: a ClusterIP:port, or a NodePort on a node's
    /// address.
    pub(super) fn service_at(&self, ip: Ipv4Addr, port: u16, proto: IpProto) -> Option<ServiceRef> {
        self.cluster
            .service_by_cluster_ip(ip, port, proto)
            .or_else(|| {
                self.cluster
                    .node_by_ip(ip)
                    .and_then(|_| self.cluster.service_by_node_port(port, proto))
            })
    }

    pub(super) fn name(&self, ip: Ipv4Addr, port: u16, proto: IpProto) -> Named {
        self.memo.name((ip, port, proto), || {
            let (pod, pod_node) = self
                .cluster
                .pod_by_ip(ip)
                .map_or((None, None), |p| (Some(p.name), p.node));
            let node = pod_node.or_else(|| self.cluster.node_by_ip(ip));
            let service = self.service_at(ip, port, proto).map(|s| s.name);
            Named {
                ip: Some(ip),
                pod: pod.map(|p| Text::from(p.to_string())),
                service: service.map(|s| Text::from(s.to_string())),
                node: node.map(Text::from),
            }
        })
    }

    pub(super) fn node_of(&self, obs: &Observation) -> Option<Text> {
        self.node_in(obs.netns_cookie)
    }

    pub(super) fn node_in(&self, cookie: u64) -> Option<Text> {
        self.memo
            .node(cookie, || self.topology.node_name(cookie).map(Text::from))
    }

    pub(super) fn interface_name(&self, obs: &Observation) -> Option<Text> {
        self.topology
            .host(obs.netns_cookie)?
            .info
            .link(obs.ifindex)
            .map(|l| Text::from(l.name.as_str()))
    }

    /// The route `node_cookie`'s namespace has to `dst`, as its table says.
    pub(super) fn route_on(&self, node_cookie: u64, dst: Ipv4Addr) -> RouteInfo {
        self.memo
            .route((node_cookie, dst), || self.look_up_route(node_cookie, dst))
    }

    fn look_up_route(&self, node_cookie: u64, dst: Ipv4Addr) -> RouteInfo {
        let unknown = |kind: &str, text: String| RouteInfo {
            prefix: None,
            gateway: None,
            dev: None,
            table: "main".into(),
            protocol: None,
            kind: kind.into(),
            text: text.into(),
            mtu: None,
        };
        let Some(host) = self.topology.host(node_cookie) else {
            return unknown("unknown", "routing table not known".to_owned());
        };
        match host.info.route_to(dst) {
            Some(r) => RouteInfo {
                prefix: Some(format!("{}/{}", r.dst, r.prefix).into()),
                gateway: r.gateway,
                dev: r.dev.as_deref().map(Text::from),
                table: r.table.as_str().into(),
                protocol: Some(r.protocol.as_str().into()),
                kind: r.kind.as_str().into(),
                text: r.describe().into(),
                mtu: r
                    .dev
                    .as_deref()
                    .and_then(|d| host.info.link_named(d))
                    .map(|l| l.mtu),
            },
            None => unknown("none", format!("no route to {dst}")),
        }
    }
}
