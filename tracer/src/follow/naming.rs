//! The live Kubernetes model seen through the small interface explanation needs.

use std::net::Ipv4Addr;

use crate::{
    journey::explain::{ClusterNames, ServiceRef},
    k8s::model::{ClusterModel, Protocol, ServiceInfo},
};

pub struct ModelNames<'a>(pub &'a ClusterModel);

fn service_ref(service: &ServiceInfo) -> ServiceRef {
    ServiceRef {
        name: format!("{}/{}", service.namespace, service.name),
        ready_endpoints: service.endpoints.iter().filter(|e| e.ready).count(),
    }
}

impl ClusterNames for ModelNames<'_> {
    fn pod_by_ip(&self, ip: Ipv4Addr) -> Option<(String, Option<String>)> {
        self.0
            .pod_by_ip(ip)
            .map(|p| (format!("{}/{}", p.namespace, p.name), p.node.clone()))
    }

    fn service_by_cluster_ip(&self, ip: Ipv4Addr, port: u16, proto: u8) -> Option<ServiceRef> {
        let service = self.0.service_by_cluster_ip(ip)?;
        let protocol = Protocol::from_number(proto);
        service
            .ports
            .iter()
            .any(|p| p.port == port && Some(p.protocol) == protocol)
            .then(|| service_ref(service))
    }

    fn service_by_node_port(&self, port: u16, proto: u8) -> Option<ServiceRef> {
        let protocol = Protocol::from_number(proto)?;
        self.0.service_by_node_port(port, protocol).map(service_ref)
    }

    fn endpoint_position(&self, service: &str, ip: Ipv4Addr, port: u16) -> Option<(usize, usize)> {
        let (namespace, name) = service.split_once('/')?;
        let service = self.0.service(namespace, name)?;
        self.0.endpoint_position(service, ip, port)
    }

    fn node_by_ip(&self, ip: Ipv4Addr) -> Option<String> {
        self.0.node_by_ip(ip).map(|n| n.name.clone())
    }
}
