//! TEMPORARY stub while the real API module is written.
use std::net::{SocketAddr, TcpListener};
pub struct ApiServer(TcpListener);
impl ApiServer {
    pub fn start(addr: SocketAddr, _c: &super::spec::Cluster) -> std::io::Result<Self> {
        Ok(Self(TcpListener::bind(addr)?))
    }
    pub fn local_addr(&self) -> SocketAddr {
        self.0.local_addr().unwrap()
    }
    pub fn update(&self, _c: &super::spec::Cluster) {}
}
pub fn kubeconfig(url: &str) -> String {
    url.to_owned()
}
