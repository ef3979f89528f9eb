//! `tracer follow FROM TO --agents`: one short-lived agent Pod per node the packets can
//! cross, made through the Kubernetes API with the user's kubeconfig, each reached
//! through `pods/portforward` and read as `--agent ADDR` reads an agent
//! ([`super::agents`]).
//!
//! The Pods ([`agent_pod`]): `nodeName` pinned (no scheduler), host network and PID
//! namespaces (the node's interfaces and its Pods' namespaces), the capabilities of
//! [`crate::caps::FOLLOW_NEEDS`] and no others, `/sys/fs/bpf` and the kernel's BTF
//! mounted, `restartPolicy: Never`, `activeDeadlineSeconds` (`--agent-deadline`), and the
//! labels [`NAME_LABEL`] and [`SESSION_LABEL`]. The agent listens on loopback only
//! ([`AGENT_PORT`]): port-forward is its one way in.
//!
//! A node that runs a standing agent (`tracer deploy`'s DaemonSet, label
//! [`NODE_AGENT_LABEL`], ready) is asked through it instead ([`super::node_agent`]): no
//! Pod is made there, and it stays when the session ends.
//!
//! Lifetime: the Pods are deleted when this process ends, on Ctrl-C and on errors. If it
//! is killed, the port-forwards close, each agent's reader is gone and it ends; the
//! deadline ends any that would not, and the next `--agents` run deletes finished agent
//! Pods it finds. A port-forward that breaks is that node lost: the others go on.

use std::{
    collections::BTreeSet,
    net::{TcpListener, TcpStream},
    sync::mpsc,
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use k8s_openapi::api::core::v1 as core;
use kube::api::{Api, DeleteParams, ListParams, PostParams};

use crate::{
    cli::FollowArgs,
    k8s::{model::ClusterModel, resolve::Target},
};

/// The image `--agent-image` defaults to: this release of tracer (`cargo xtask image`
/// builds it; push it where the cluster pulls from, or give `--agent-image`).
pub const DEFAULT_IMAGE: &str = concat!("ghcr.io/tracer-dev/tracer:", env!("CARGO_PKG_VERSION"));

/// The port each agent listens on, on the node's loopback.
pub const AGENT_PORT: u16 = 4790;

/// `app.kubernetes.io/name=tracer-agent` on every agent Pod.
pub const NAME_LABEL: (&str, &str) = ("app.kubernetes.io/name", "tracer-agent");
/// The standing agents' label (`tracer deploy`'s DaemonSet).
pub const NODE_AGENT_LABEL: (&str, &str) = ("app.kubernetes.io/name", "tracer-node-agent");
/// Which `follow` made the Pod.
pub const SESSION_LABEL: &str = "tracer.dev/session";

/// How long the Pods may take to start (an image pull on a cold node).
const STARTING: Duration = Duration::from_secs(300);
/// How often a starting Pod is looked at.
const POLL: Duration = Duration::from_millis(200);
/// How long deleting the Pods may take at the end.
const DELETING: Duration = Duration::from_secs(15);

/// The nodes the packets between `from` and `to` can cross: each side's node, a
/// Service's endpoints' nodes, and every node when it has NodePorts.
pub fn involved_nodes(
    model: &ClusterModel,
    from: &Target,
    to: &Target,
) -> anyhow::Result<Vec<String>> {
    let mut nodes = BTreeSet::new();
    for target in [from, to] {
        match target {
            Target::Pod(pod) => {
                let node = pod.node.clone().with_context(|| {
                    format!("Pod {}/{} is not on a node yet", pod.namespace, pod.name)
                })?;
                nodes.insert(node);
            }
            Target::Node(node) => {
                nodes.insert(node.name.clone());
            }
            Target::Service(service) => {
                nodes.extend(service.endpoints.iter().filter_map(|e| e.node.clone()));
                if service.ports.iter().any(|p| p.node_port.is_some()) {
                    nodes.extend(model.nodes().map(|n| n.name.clone()));
                }
            }
            Target::Ip(ip) => {
                let node = model
                    .pod_by_ip(*ip)
                    .and_then(|p| p.node.clone())
                    .or_else(|| model.node_by_ip(*ip).map(|n| n.name.clone()))
                    .or_else(|| model.node_by_pod_ip(*ip).map(|n| n.name.clone()));
                // An address outside the cluster crosses no node of its own.
                nodes.extend(node);
            }
        }
    }
    if nodes.is_empty() {
        anyhow::bail!("no node of the cluster is on the way between {from} and {to}");
    }
    Ok(nodes.into_iter().collect())
}

/// The `tracer agent` arguments for `node`: what the user asked `follow`, scoped to it.
pub fn agent_args(args: &FollowArgs, node: &str) -> Vec<String> {
    let mut argv = vec!["agent".to_owned()];
    argv.extend(session_args(args));
    argv.extend(["--node".to_owned(), node.to_owned()]);
    argv.extend(["--listen".to_owned(), format!("127.0.0.1:{AGENT_PORT}")]);
    if let Some(prefix) = &args.netns_prefix {
        argv.extend(["--netns-prefix".to_owned(), prefix.clone()]);
    }
    argv
}

/// What the user asked `follow`, as an agent's arguments (a standing agent's request).
pub fn session_args(args: &FollowArgs) -> Vec<String> {
    let mut argv: Vec<String> = [&args.from, &args.to, "-n", &args.namespace]
        .map(str::to_owned)
        .to_vec();
    if let Some(port) = args.port {
        argv.extend(["--port".to_owned(), port.to_string()]);
    }
    if let Some(proto) = args.proto {
        let name = clap::ValueEnum::to_possible_value(&proto).map(|v| v.get_name().to_owned());
        argv.extend(["--proto".to_owned()].into_iter().chain(name));
    }
    for (flag, on) in [
        ("--kernel-stats", args.kernel_stats),
        ("--kernel-log", args.kernel_log),
        ("--no-route-hook", args.no_route_hook),
        ("--no-nat-hook", args.no_nat_hook),
    ] {
        if on {
            argv.push(flag.to_owned());
        }
    }
    argv
}

fn host_path(name: &str, path: &str, read_only: bool) -> (core::Volume, core::VolumeMount) {
    (
        core::Volume {
            name: name.to_owned(),
            host_path: Some(core::HostPathVolumeSource {
                path: path.to_owned(),
                type_: Some("Directory".to_owned()),
            }),
            ..Default::default()
        },
        core::VolumeMount {
            name: name.to_owned(),
            mount_path: path.to_owned(),
            read_only: Some(read_only),
            ..Default::default()
        },
    )
}

/// The agent's Pod spec (without `nodeName`): also the DaemonSet's (`tracer deploy`).
pub fn agent_spec(image: &str, args: Vec<String>) -> core::PodSpec {
    let (volumes, mounts): (Vec<_>, Vec<_>) = [
        host_path("bpffs", "/sys/fs/bpf", false),
        host_path("btf", "/sys/kernel/btf", true),
        // Named network namespaces (`ip netns`), as the lab and some CNIs keep them.
        host_path("netns", "/run/netns", true),
    ]
    .into_iter()
    .unzip();
    let capabilities = crate::caps::FOLLOW_NEEDS
        .iter()
        .map(|c| c.name.trim_start_matches("CAP_").to_owned())
        .collect();
    core::PodSpec {
        host_network: Some(true),
        host_pid: Some(true),
        dns_policy: Some("ClusterFirstWithHostNet".to_owned()),
        service_account_name: Some("tracer-agent".to_owned()),
        // Nodes tainted for special workloads are nodes packets cross too.
        tolerations: Some(vec![core::Toleration {
            operator: Some("Exists".to_owned()),
            ..Default::default()
        }]),
        containers: vec![core::Container {
            name: "agent".to_owned(),
            image: Some(image.to_owned()),
            command: Some(vec!["tracer".to_owned()]),
            args: Some(args),
            ports: Some(vec![core::ContainerPort {
                container_port: i32::from(AGENT_PORT),
                name: Some("stream".to_owned()),
                protocol: Some("TCP".to_owned()),
                ..Default::default()
            }]),
            // Why an agent ended shows in the Pod's status.
            termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
            security_context: Some(core::SecurityContext {
                privileged: Some(false),
                allow_privilege_escalation: Some(false),
                capabilities: Some(core::Capabilities {
                    add: Some(capabilities),
                    drop: Some(vec!["ALL".to_owned()]),
                }),
                ..Default::default()
            }),
            volume_mounts: Some(mounts),
            ..Default::default()
        }],
        volumes: Some(volumes),
        ..Default::default()
    }
}

/// The agent Pod for `node`.
pub fn agent_pod(args: &FollowArgs, node: &str, session: &str) -> core::Pod {
    let mut spec = agent_spec(&args.agent_image, agent_args(args, node));
    spec.node_name = Some(node.to_owned());
    spec.restart_policy = Some("Never".to_owned());
    spec.active_deadline_seconds = i64::try_from(args.agent_deadline.as_secs().max(1)).ok();
    core::Pod {
        metadata: kube::api::ObjectMeta {
            generate_name: Some(format!("tracer-agent-{node}-")),
            namespace: Some(args.agent_namespace.clone()),
            labels: Some(
                [
                    (NAME_LABEL.0.to_owned(), NAME_LABEL.1.to_owned()),
                    (SESSION_LABEL.to_owned(), session.to_owned()),
                ]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// `tracer deploy`: a DaemonSet keeping a node agent on every node.
pub fn daemon_set(image: &str, namespace: &str) -> k8s_openapi::api::apps::v1::DaemonSet {
    use k8s_openapi::{api::apps::v1 as apps, apimachinery::pkg::apis::meta::v1::LabelSelector};
    let labels: std::collections::BTreeMap<String, String> =
        [(NODE_AGENT_LABEL.0.to_owned(), NODE_AGENT_LABEL.1.to_owned())].into();
    let args = vec![
        "node-agent".to_owned(),
        "--listen".to_owned(),
        format!("127.0.0.1:{AGENT_PORT}"),
    ];
    apps::DaemonSet {
        metadata: kube::api::ObjectMeta {
            name: Some("tracer-node-agent".to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels.clone()),
            ..Default::default()
        },
        spec: Some(apps::DaemonSetSpec {
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: core::PodTemplateSpec {
                metadata: Some(kube::api::ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(agent_spec(image, args)),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// The agent Pods could not be made (no RBAC, an API that runs no Pods): nothing was
/// started, and a `follow` that chose agents by itself stays on this machine.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CannotStart(pub String);

/// One node's agent, reached: a loopback socket carrying its port-forward.
pub struct Reached {
    pub node: String,
    pub pod: String,
    pub stream: TcpStream,
}

/// What the Pods' thread reports while it starts them.
enum Progress {
    Created(String, String),
    /// A node whose standing agent (`tracer deploy`) is used.
    Standing(String, String),
    Reached(Reached),
    /// A node whose agent could not be reached: the others go on.
    Lost(String, String),
    Done,
    Failed(anyhow::Error),
}

/// The agent Pods started, the nodes reached and those lost (with why).
pub struct Started {
    pub pods: AgentPods,
    pub reached: Vec<Reached>,
    pub lost: Vec<(String, String)>,
}

/// The agent Pods of one `follow`: deleted when dropped.
pub struct AgentPods {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl AgentPods {
    /// Creates the Pods, waits for each to run and opens its port-forward.
    pub fn start(
        args: &FollowArgs,
        nodes: &[String],
        stop_requested: &dyn Fn() -> bool,
    ) -> anyhow::Result<Started> {
        let session = format!(
            "{:x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
                & 0xFFFF_FFFF_FFFF
        );
        let pods: Vec<core::Pod> = nodes
            .iter()
            .map(|node| agent_pod(args, node, &session))
            .collect();
        let config = (args.kubeconfig.clone(), args.context.clone());
        let namespace = args.agent_namespace.clone();
        let request = super::node_agent::request_line(session_args(args));
        let (progress, reports) = mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let thread = thread::Builder::new()
            .name("agent-pods".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = progress.send(Progress::Failed(e.into()));
                        return;
                    }
                };
                runtime.block_on(run(config, namespace, pods, request, progress, stopped));
            })?;
        let mut agent_pods = Self {
            stop: Some(stop),
            thread: Some(thread),
        };
        let mut reached = Vec::new();
        let mut lost = Vec::new();
        loop {
            if stop_requested() {
                anyhow::bail!("stopped while the agent Pods were starting");
            }
            match reports.recv_timeout(POLL) {
                Ok(Progress::Created(node, pod)) => {
                    eprintln!(
                        "  node {node}: agent Pod {}/{pod} created",
                        args.agent_namespace
                    );
                }
                Ok(Progress::Standing(node, pod)) => {
                    eprintln!(
                        "  node {node}: standing agent {}/{pod} (tracer deploy)",
                        args.agent_namespace
                    );
                }
                Ok(Progress::Reached(r)) => {
                    eprintln!(
                        "  node {}: agent Pod {} running, port-forward open",
                        r.node, r.pod
                    );
                    reached.push(r);
                }
                Ok(Progress::Lost(node, why)) => {
                    eprintln!("  node {node}: no agent: {why}");
                    lost.push((node, why));
                }
                Ok(Progress::Done) => break,
                Ok(Progress::Failed(e)) => return Err(e),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    agent_pods.thread.take().map(JoinHandle::join);
                    anyhow::bail!("the agent Pods' thread ended");
                }
            }
        }
        Ok(Started {
            pods: agent_pods,
            reached,
            lost,
        })
    }
}

impl Drop for AgentPods {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn run(
    (kubeconfig, context): (Option<std::path::PathBuf>, Option<String>),
    namespace: String,
    pods: Vec<core::Pod>,
    request: String,
    progress: mpsc::Sender<Progress>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let api = match client(kubeconfig.as_deref(), context.as_deref()).await {
        Ok(client) => Api::<core::Pod>::namespaced(client, &namespace),
        Err(e) => {
            let _ = progress.send(Progress::Failed(e));
            return;
        }
    };
    delete_finished(&api).await;
    let standing = standing_agents(&api).await;
    let mut created = Vec::new();
    let setup = async {
        // (node, Pod, request): a standing agent is asked; a Pod made for us is not.
        let mut agents = Vec::new();
        for pod in &pods {
            let node = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            if let Some((_, name)) = standing.iter().find(|(n, _)| *n == node) {
                let _ = progress.send(Progress::Standing(node.clone(), name.clone()));
                agents.push((node, name.clone(), Some(request.as_str())));
                continue;
            }
            match api.create(&PostParams::default(), pod).await {
                Ok(made) => {
                    let name = made.metadata.name.clone().unwrap_or_default();
                    let _ = progress.send(Progress::Created(node.clone(), name.clone()));
                    created.push(name.clone());
                    agents.push((node, name, None));
                }
                Err(e) => {
                    let why = format!(
                        "cannot create the agent Pod for node {node} in namespace {namespace} ({}; RBAC: deploy/rbac.yaml)",
                        crate::k8s::error::root_cause(&e)
                    );
                    let _ = progress.send(Progress::Failed(if created.is_empty() {
                        CannotStart(why).into()
                    } else {
                        anyhow::anyhow!(why)
                    }));
                    return;
                }
            }
        }
        let mut forwards = Vec::new();
        for (node, name, request) in agents {
            match reach(&api, &name, request).await {
                Ok((stream, forward)) => {
                    forwards.push(forward);
                    let _ = progress.send(Progress::Reached(Reached {
                        node,
                        pod: name,
                        stream,
                    }));
                }
                Err(e) => {
                    let _ = progress.send(Progress::Lost(node, format!("{e:#}")));
                }
            }
        }
        let _ = progress.send(Progress::Done);
        // The forwards run until the end.
        futures::future::join_all(forwards).await;
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = setup => {}
        _ = &mut stopped => {}
    }
    // Deleted at the end, also when stopped while starting; standing agents stay.
    let deleting = async {
        for name in &created {
            let _ = api.delete(name, &DeleteParams::default()).await;
        }
    };
    let _ = tokio::time::timeout(DELETING, deleting).await;
}

/// The ready node agents of `tracer deploy`'s DaemonSet: (node, Pod).
async fn standing_agents(api: &Api<core::Pod>) -> Vec<(String, String)> {
    let selector = format!("{}={}", NODE_AGENT_LABEL.0, NODE_AGENT_LABEL.1);
    let Ok(list) = api.list(&ListParams::default().labels(&selector)).await else {
        return Vec::new();
    };
    list.into_iter()
        .filter(|pod| is_ready(pod.status.as_ref()))
        .filter_map(|pod| Some((pod.spec?.node_name?, pod.metadata.name?)))
        .collect()
}

fn is_ready(status: Option<&core::PodStatus>) -> bool {
    status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

async fn client(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> anyhow::Result<kube::Client> {
    use crate::k8s::kubeconfig;
    let origin = kubeconfig::choose(kubeconfig, &kubeconfig::Environment::from_process())?;
    let (config, _) = kubeconfig::load(&origin, context).await?;
    Ok(kube::Client::try_from(config)?)
}

/// Deletes agent Pods that have ended (left by a `follow` that was killed).
async fn delete_finished(api: &Api<core::Pod>) {
    let selector = format!("{}={}", NAME_LABEL.0, NAME_LABEL.1);
    let Ok(list) = api.list(&ListParams::default().labels(&selector)).await else {
        return;
    };
    for pod in list {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed"))
            && let Some(name) = &pod.metadata.name
        {
            let _ = api.delete(name, &DeleteParams::default()).await;
        }
    }
}

/// Waits for the Pod to be ready, opens its port-forward and carries it over a loopback
/// socket pair; returns this process's end and the future that carries the bytes.
async fn reach(
    api: &Api<core::Pod>,
    name: &str,
    request: Option<&str>,
) -> anyhow::Result<(TcpStream, impl Future<Output = ()> + use<>)> {
    let until = Instant::now() + STARTING;
    loop {
        let pod = api.get(name).await.context("read the agent Pod")?;
        let ready = is_ready(pod.status.as_ref());
        let status = pod.status.unwrap_or_default();
        match status.phase.as_deref() {
            _ if ready => break,
            Some(phase @ ("Succeeded" | "Failed")) => {
                // The agent's own last words, else the Pod's reason.
                let said = status
                    .container_statuses
                    .iter()
                    .flatten()
                    .find_map(|c| c.state.as_ref()?.terminated.as_ref()?.message.clone())
                    .or(status.message);
                anyhow::bail!(
                    "its Pod {name} ended ({phase}{})",
                    said.map(|m| format!(": {}", m.trim())).unwrap_or_default()
                )
            }
            _ if Instant::now() >= until => {
                anyhow::bail!(
                    "its Pod {name} did not start within {} s",
                    STARTING.as_secs()
                )
            }
            _ => tokio::time::sleep(POLL).await,
        }
    }
    let mut forwarder = api
        .portforward(name, &[AGENT_PORT])
        .await
        .context("open the port-forward")?;
    let mut remote = forwarder
        .take_stream(AGENT_PORT)
        .context("the port-forward has no stream")?;
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let mut ours = TcpStream::connect(listener.local_addr()?)?;
    if let Some(request) = request {
        std::io::Write::write_all(&mut ours, request.as_bytes())?;
    }
    let (theirs, _) = listener.accept()?;
    theirs.set_nonblocking(true)?;
    let mut theirs = tokio::net::TcpStream::from_std(theirs)?;
    let carry = async move {
        let _ = tokio::io::copy_bidirectional(&mut remote, &mut theirs).await;
        drop(forwarder);
    };
    Ok((ours, carry))
}
