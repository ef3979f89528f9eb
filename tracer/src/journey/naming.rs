//! The cluster model seen through the small interface explanation needs
//! ([`ClusterNames`]), for live sessions and replays alike.

use std::net::Ipv4Addr;

use super::{
    explain::{ClusterNames, PodName, ServiceRef},
    observation::IpProto,
};
use crate::k8s::model::{ClusterModel, ObjectName, Protocol, ServiceInfo};

pub struct ModelNames<'a>(pub &'a ClusterModel);

fn service_ref(service: &ServiceInfo) -> ServiceRef {
    ServiceRef {
        name: service.object_name(),
        ready_endpoints: service.endpoints.iter().filter(|e| e.ready).count(),
    }
}

impl ClusterNames for ModelNames<'_> {
    fn pod_by_ip(&self, ip: Ipv4Addr) -> Option<PodName> {
        self.0.pod_by_ip(ip).map(|p| PodName {
            name: p.object_name(),
            node: p.node.clone(),
        })
    }

    fn service_by_cluster_ip(&self, ip: Ipv4Addr, port: u16, proto: IpProto) -> Option<ServiceRef> {
        let service = self.0.service_by_cluster_ip(ip)?;
        let protocol = Protocol::of_packet(proto);
        service
            .ports
            .iter()
            .any(|p| p.port == port && Some(p.protocol) == protocol)
            .then(|| service_ref(service))
    }

    fn service_by_node_port(&self, port: u16, proto: IpProto) -> Option<ServiceRef> {
        let protocol = Protocol::of_packet(proto)?;
        self.0.service_by_node_port(port, protocol).map(service_ref)
    }

    fn endpoint_position(
        &self,
        service: &ObjectName,
        ip: Ipv4Addr,
        port: u16,
    ) -> Option<(usize, usize)> {
        let service = self.0.service(&service.namespace, &service.name)?;
        self.0.endpoint_position(service, ip, port)
    }

    fn node_by_ip(&self, ip: Ipv4Addr) -> Option<String> {
        self.0.node_by_ip(ip).map(|n| n.name.clone())
    }
}
