//! The lab's one long-running process (`tracer lab daemon`, started by `lab up`, stopped by
//! `lab down`): the Pods' HTTP servers (a thread per Pod, bound inside its namespace) and
//! the Kubernetes API on loopback. It follows the lab's state ([`State::cluster`]: the
//! scenario `up` rewrites and the Pod changes `replace-pod` appends), so a scenario switch
//! or a replaced Pod reaches API watchers as watch events without a restart: a new Pod's
//! server starts, a removed Pod's stops, and the API shows exactly the difference. Once
//! that is done it records how many Pod changes it serves, which `replace-pod` waits for.

use std::{collections::BTreeMap, net::SocketAddr, thread, time::Duration};

use anyhow::Context as _;

use super::{
    agent_runtime::AgentRuntime,
    api::{self, ApiServer},
    apply, plan,
    spec::{Cluster, Scenario, Server},
    state::State,
    web::{self, WebServer},
};

/// The port a lab's API prefers, on loopback only: 16443 for the default lab (unlikely to
/// collide with a real API server on the host, 6443; the kubeconfig says which port was
/// taken), and for a lab under another
/// prefix one derived from the prefix. Either way the same across `down` and `up`, as a
/// real API server keeps its address across restarts, so a running `tracer follow` finds it
/// again. (Taken by something else, the API falls back to any free port.)
fn preferred_api_addr() -> SocketAddr {
    let prefix = plan::prefix();
    let port = if prefix == "tracer-lab-" {
        16443
    } else {
        // FNV-1a over the prefix, folded into 16444..=18443.
        let hash = prefix.bytes().fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
        16444 + u16::try_from(hash % 2000).unwrap_or(0)
    };
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// How often the daemon reads the lab's state.
const POLL: Duration = Duration::from_millis(100);

pub fn run(state: &State) -> anyhow::Result<()> {
    let cluster = state
        .cluster()
        .unwrap_or_else(|| Cluster::seed(Scenario::Healthy));
    let mut servers = BTreeMap::new();
    serve_pods(&cluster, &mut servers, true)?;

    let kubeconfig = state.kubeconfig_path();
    // Agent Pods (`tracer follow --agents`) run as this same tracer binary.
    let runtime = || -> Option<Box<dyn api::workloads::Runtime>> {
        Some(Box::new(AgentRuntime {
            program: std::env::current_exe().ok()?,
            env: vec![("KUBECONFIG".to_owned(), kubeconfig.display().to_string())],
            logs: state.dir().join("pods"),
        }))
    };
    let server = ApiServer::start_with(preferred_api_addr(), &cluster, runtime())
        .or_else(|_| {
            ApiServer::start_with(SocketAddr::from(([127, 0, 0, 1], 0)), &cluster, runtime())
        })
        .context("start the lab's Kubernetes API")?;
    let url = format!("http://{}", server.local_addr());
    let mut applied = state.changes().len();
    state
        .set_applied(applied)
        .context("record the served changes")?;
    state
        .set_kubeconfig(&api::kubeconfig(&url))
        .context("write kubeconfig")?;
    eprintln!("lab daemon: Pods serving HTTP, Kubernetes API at {url}");

    let mut current = cluster;
    // A server that could not start is tried again on the next round.
    let mut retry = false;
    loop {
        thread::sleep(POLL);
        // Changes first: `applied` must never claim more than the cluster served includes.
        let changes = state.changes().len();
        let Some(next) = state.cluster() else {
            continue;
        };
        if next != current || retry {
            retry = false;
            if let Err(e) = serve_pods(&next, &mut servers, false) {
                eprintln!("lab daemon: {e:#}");
                retry = true;
            }
            server.update(&next);
            if next.scenario != current.scenario {
                eprintln!(
                    "lab daemon: scenario {} -> {}",
                    current.scenario, next.scenario
                );
            }
            current = next;
        }
        if changes != applied && !retry && state.set_applied(changes).is_ok() {
            eprintln!("lab daemon: serving {changes} Pod change(s)");
            applied = changes;
        }
    }
}

/// Makes `servers` match the Pods of `cluster` that serve HTTP: starts the missing ones,
/// stops those of Pods that are gone. At start-up (`strict`) a server that cannot start is
/// an error; later it is reported and the others go on.
fn serve_pods(
    cluster: &Cluster,
    servers: &mut BTreeMap<String, WebServer>,
    strict: bool,
) -> anyhow::Result<()> {
    let wanted: Vec<_> = cluster
        .pods
        .iter()
        .filter(|p| p.server != Server::None)
        .collect();
    let gone: Vec<String> = servers
        .keys()
        .filter(|name| !wanted.iter().any(|p| p.name == **name))
        .cloned()
        .collect();
    for name in gone {
        if let Some(server) = servers.remove(&name) {
            server.stop();
        }
    }
    let mut failed = Vec::new();
    for pod in wanted {
        if servers.contains_key(&pod.name) {
            continue;
        }
        match web::serve_in(
            &apply::netns_path(&plan::pod_netns(&pod.name)),
            pod.name.clone(),
            pod.server,
        ) {
            Ok(server) => {
                servers.insert(pod.name.clone(), server);
            }
            Err(e) if strict => {
                return Err(e).with_context(|| format!("HTTP server for Pod {}", pod.name));
            }
            Err(e) => failed.push(format!("HTTP server for Pod {}: {e}", pod.name)),
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(failed.join("; "))
    }
}
