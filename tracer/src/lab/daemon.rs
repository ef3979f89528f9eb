//! The lab's one long-running process (`tracer lab daemon`, started by `lab up`, stopped by
//! `lab down`): the Pods' HTTP servers (a thread per Pod, bound inside its namespace) and
//! the Kubernetes API on loopback. It follows the scenario file that `up` rewrites, so a
//! scenario switch reaches API watchers as watch events without a restart.

use std::{net::SocketAddr, thread, time::Duration};

use anyhow::Context as _;

use super::{
    api::{self, ApiServer},
    apply, plan,
    spec::{Cluster, Scenario, Server},
    state::State,
};

/// Where the lab API listens: loopback only, on a port unlikely to collide with a real
/// API server on the host (6443); the kubeconfig says which port was taken.
pub const API_ADDR: &str = "127.0.0.1:16443";

pub fn run(state: &State) -> anyhow::Result<()> {
    let scenario = state.scenario().unwrap_or(Scenario::Healthy);
    let cluster = Cluster::seed(scenario);
    for pod in cluster.pods.iter().filter(|p| p.server != Server::None) {
        super::web::serve_in(
            &apply::netns_path(&plan::pod_netns(&pod.name)),
            pod.name.clone(),
            pod.server,
        )
        .with_context(|| format!("HTTP server for Pod {}", pod.name))?;
    }

    let preferred: SocketAddr = API_ADDR.parse()?;
    let server = ApiServer::start(preferred, &cluster)
        .or_else(|_| ApiServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), &cluster))
        .context("start the lab's Kubernetes API")?;
    let url = format!("http://{}", server.local_addr());
    let kubeconfig = state.kubeconfig_path();
    std::fs::write(&kubeconfig, api::kubeconfig(&url)).context("write kubeconfig")?;
    eprintln!("lab daemon: Pods serving HTTP, Kubernetes API at {url}");

    let mut current = scenario;
    loop {
        thread::sleep(Duration::from_millis(200));
        if let Some(next) = state.scenario()
            && next != current
        {
            server.update(&Cluster::seed(next));
            eprintln!("lab daemon: scenario {current} -> {next}");
            current = next;
        }
    }
}
