//! `tracer follow FROM TO --agents`: one short-lived agent Pod per node the packets can
//! cross, made through the Kubernetes API with the user's kubeconfig, each reached
//! through `pods/portforward` and read as `--agent ADDR` reads an agent
//! ([`super::agents`]). What the Pods are: [`spec`]; its calls to the API: [`api`].
//!
//! A node that runs a standing agent (`tracer deploy`'s DaemonSet, label
//! [`NODE_AGENT_LABEL`], ready) is asked through it instead ([`super::node_agent`]): no
//! Pod is made there, and it stays when the session ends.
//!
//! Starting: the Pods are made one after the other, then every node is waited for at
//! once; a node whose Pod cannot start (its image cannot be pulled, it ended, it took
//! longer than [`STARTING`]) is lost, and the others go on. Each port-forward is carried
//! from the moment it opens.
//!
//! Lifetime: the session's Pods (found again by [`SESSION_LABEL`], so that one being made
//! at Ctrl-C is not missed) are deleted when this process ends, on Ctrl-C and on errors.
//! If it is killed, the port-forwards close, each agent's reader is gone, and once its
//! resume window has passed it ends and deletes its own Pod ([`delete_own_pod`]); an
//! agent whose reader never came ends after a few minutes; `activeDeadlineSeconds` is the
//! backstop; the next session deletes any finished agent Pod it finds. A port-forward
//! that breaks is opened again, and the agent's stream resumes where it broke
//! ([`resume`], [`crate::follow::resumable`]); one that cannot be is that node lost: the
//! others go on.

mod api;
pub mod resume;
pub mod spec;

use std::{
    net::TcpStream,
    sync::mpsc,
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use futures::future::join_all;
use k8s_openapi::api::core::v1 as core;
use kube::api::{Api, PostParams};

pub use api::delete_own_pod;
use api::{
    client, delete_finished, delete_session, forward, is_ready, reach, standing_agents,
    will_not_start,
};

pub use spec::{
    CAPABILITIES, DEFAULT_IMAGE, NAME_LABEL, NODE_AGENT_LABEL, NODE_AGENT_PORT, POD_NAME_ENV,
    POD_NAMESPACE_ENV, SESSION_LABEL, agent_spec, daemon_set, involved_nodes,
};

use crate::cli::FollowArgs;

/// How long the Pods may take to start (an image pull on a cold node).
const STARTING: Duration = Duration::from_secs(300);
/// How often a starting Pod is looked at.
const POLL: Duration = Duration::from_millis(200);
/// How long deleting the Pods may take at the end.
const DELETING: Duration = Duration::from_secs(15);

/// Why a container waits that will not pass by waiting.
const STUCK: [&str; 6] = [
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "CrashLoopBackOff",
];

/// No agent could be made or reached (no RBAC, an image the nodes cannot pull, an API
/// that runs no Pods): a `follow` that chose agents by itself stays on this machine.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CannotStart(pub String);

/// One node's agent, reached: a loopback socket carrying its port-forward, and how to
/// open it again should it break (an agent Pod of this session; not a standing agent,
/// whose session ends with its connection).
pub struct Reached {
    pub node: String,
    pub pod: String,
    pub stream: TcpStream,
    pub reopen: Option<resume::Reopen>,
}

/// A port-forward to open again, from the reading side.
struct Reopening {
    pod: String,
    port: u16,
    /// The line that asks the agent for the rest (`resume TOKEN N`).
    request: String,
    reply: mpsc::Sender<Result<TcpStream, Reopened>>,
}

/// Why a port-forward could not be opened again.
enum Reopened {
    /// Its Pod has ended: trying again is no use.
    Gone(String),
    /// The API or the kubelet did not answer: worth trying again.
    NotNow(String),
}

/// How long one attempt at opening a broken port-forward may take.
const REOPEN_ATTEMPT: Duration = Duration::from_secs(5);

/// What the Pods' thread reports while it starts them.
enum Progress {
    Created(String, String),
    /// A node whose standing agent (`tracer deploy`) is used.
    Standing(String, String),
    /// Reached, and whether its stream can be resumed when it breaks.
    Reached(Reached, bool),
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
    /// Ctrl-C came while they were starting.
    pub stopped: bool,
}

/// The agent Pods of one `follow`: deleted when dropped.
pub struct AgentPods {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// What the Pods' thread works from.
struct Plan {
    kubeconfig: Option<std::path::PathBuf>,
    context: Option<String>,
    namespace: String,
    session: String,
    port: u16,
    pods: Vec<core::Pod>,
    /// What a standing agent is asked.
    request: String,
}

impl AgentPods {
    /// Creates the Pods, waits for them to run and opens their port-forwards.
    pub fn start(
        args: &FollowArgs,
        nodes: &[String],
        stop_requested: &dyn Fn() -> bool,
    ) -> anyhow::Result<Started> {
        let session = format!(
            "{:x}{:04x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis())
                & 0xFFFF_FFFF_FFFF,
            std::process::id() & 0xFFFF
        );
        let port = spec::session_port(&session);
        let token = random_token()?;
        let plan = Plan {
            kubeconfig: args.kubeconfig.clone(),
            context: args.context.clone(),
            namespace: args.agent_namespace.clone(),
            pods: nodes
                .iter()
                .map(|node| spec::agent_pod(args, node, &session, port, &token))
                .collect(),
            session,
            port,
            request: super::node_agent::request_line(spec::session_args(args)),
        };
        let (progress, reports) = mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (reopen, reopenings) = tokio::sync::mpsc::unbounded_channel::<Reopening>();
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
                runtime.block_on(run(plan, progress, stopped, reopenings));
            })?;
        let mut started = Started {
            pods: Self {
                stop: Some(stop),
                thread: Some(thread),
            },
            reached: Vec::new(),
            lost: Vec::new(),
            stopped: false,
        };
        loop {
            if stop_requested() {
                started.stopped = true;
                return Ok(started);
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
                Ok(Progress::Reached(mut r, resumable)) => {
                    eprintln!(
                        "  node {}: agent Pod {} running, port-forward open",
                        r.node, r.pod
                    );
                    if resumable {
                        r.reopen = Some(reopener(
                            reopen.clone(),
                            &r.pod,
                            port,
                            token.clone(),
                            args.agent_resume_within,
                        ));
                    }
                    started.reached.push(r);
                }
                Ok(Progress::Lost(node, why)) => {
                    eprintln!("  node {node}: no agent: {why}");
                    started.lost.push((node, why));
                }
                Ok(Progress::Done) => return Ok(started),
                Ok(Progress::Failed(e)) => return Err(e),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    anyhow::bail!("the agent Pods' thread ended");
                }
            }
        }
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

/// Asks the Pods' thread to open `pod`'s port-forward again from a byte, and waits.
/// A session's secret: 128 random bits, in hex.
fn random_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Tries again, with growing pauses, while the agent waits: an API server that restarts
/// takes a few seconds to answer again. Each wait is cut short by Ctrl-C.
fn reopener(
    requests: tokio::sync::mpsc::UnboundedSender<Reopening>,
    pod: &str,
    port: u16,
    token: String,
    within: Duration,
) -> resume::Reopen {
    let pod = pod.to_owned();
    Box::new(move |from| {
        // Within the agents' resume window (`--agent-resume-within`).
        let until = Instant::now() + within;
        let mut pause = Duration::from_millis(200);
        loop {
            let (reply, answer) = mpsc::channel();
            requests
                .send(Reopening {
                    pod: pod.clone(),
                    port,
                    request: format!("resume {token} {from}\n"),
                    reply,
                })
                .map_err(|_| std::io::Error::other("the session is ending"))?;
            let why = loop {
                if super::stop_requested() {
                    return Err(std::io::Error::other("stopping"));
                }
                match answer.recv_timeout(POLL) {
                    Ok(Ok(stream)) => return Ok(stream),
                    Ok(Err(Reopened::Gone(why))) => return Err(std::io::Error::other(why)),
                    Ok(Err(Reopened::NotNow(why))) => break why,
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => break "no answer".to_owned(),
                }
            };
            if Instant::now() + pause >= until {
                return Err(std::io::Error::other(why));
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    })
}

/// One attempt at opening a broken port-forward again: the Pod must still be ready (no
/// waiting for it to start, as at first).
async fn reopen_once(
    api: &Api<core::Pod>,
    pod: &str,
    port: u16,
    request: &str,
) -> Result<TcpStream, Reopened> {
    let not_now = |e: &dyn std::fmt::Display| Reopened::NotNow(e.to_string());
    let found = api.get(pod).await.map_err(|e| not_now(&e))?;
    if let Some(why) = found.status.as_ref().and_then(|s| will_not_start(pod, s)) {
        return Err(Reopened::Gone(why));
    }
    if !is_ready(found.status.as_ref()) {
        return Err(Reopened::NotNow(format!("its Pod {pod} is not ready")));
    }
    let (stream, carry) = forward(api, pod, port, Some(request))
        .await
        .map_err(|e| not_now(&format!("{e:#}")))?;
    tokio::spawn(carry);
    Ok(stream)
}

async fn run(
    plan: Plan,
    progress: mpsc::Sender<Progress>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
    mut reopenings: tokio::sync::mpsc::UnboundedReceiver<Reopening>,
) {
    let api = match client(plan.kubeconfig.as_deref(), plan.context.as_deref()).await {
        Ok(client) => Api::<core::Pod>::namespaced(client, &plan.namespace),
        Err(e) => {
            let _ = progress.send(Progress::Failed(e));
            return;
        }
    };
    let setup = async {
        delete_finished(&api).await;
        let standing = standing_agents(&api).await;
        // (node, Pod, port, request): a standing agent is asked; a Pod made for us is not.
        let mut agents = Vec::new();
        let mut made = 0;
        for pod in &plan.pods {
            let node = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            if let Some((_, name)) = standing.iter().find(|(n, _)| *n == node) {
                let _ = progress.send(Progress::Standing(node.clone(), name.clone()));
                let request = Some(plan.request.as_str());
                agents.push((node, name.clone(), NODE_AGENT_PORT, request));
                continue;
            }
            match api.create(&PostParams::default(), pod).await {
                Ok(created) => {
                    let name = created.metadata.name.clone().unwrap_or_default();
                    let _ = progress.send(Progress::Created(node.clone(), name.clone()));
                    made += 1;
                    agents.push((node, name, plan.port, None));
                }
                Err(e) => {
                    let why = format!(
                        "cannot create the agent Pod for node {node} in namespace {} ({}; it needs the RBAC of deploy/rbac.yaml, and Pod Security must admit its capabilities there)",
                        plan.namespace,
                        crate::k8s::error::root_cause(&e)
                    );
                    let _ = progress.send(Progress::Failed(if made == 0 {
                        CannotStart(why).into()
                    } else {
                        anyhow::anyhow!(why)
                    }));
                    return;
                }
            }
        }
        // Every node at once: each is carried from the moment it is reached.
        join_all(agents.into_iter().map(|(node, name, port, request)| {
            let api = &api;
            let progress = &progress;
            async move {
                let message = match reach(api, &name, port, request).await {
                    Ok((stream, carry)) => {
                        tokio::spawn(carry);
                        let reached = Reached {
                            node,
                            pod: name,
                            stream,
                            reopen: None,
                        };
                        // A standing agent's session ends with its connection.
                        Progress::Reached(reached, request.is_none())
                    }
                    Err(e) => Progress::Lost(node, format!("{e:#}")),
                };
                let _ = progress.send(message);
            }
        }))
        .await;
        let _ = progress.send(Progress::Done);
        // Broken port-forwards opened again, for as long as the session lasts: each on its
        // own, so that one slow to answer holds up no other.
        let api = std::sync::Arc::new(api.clone());
        while let Some(again) = reopenings.recv().await {
            let api = api.clone();
            tokio::spawn(async move {
                let attempt = reopen_once(&api, &again.pod, again.port, &again.request);
                let reopened = tokio::time::timeout(REOPEN_ATTEMPT, attempt)
                    .await
                    .unwrap_or_else(|_| Err(Reopened::NotNow("no answer in time".to_owned())));
                let _ = again.reply.send(reopened);
            });
        }
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = setup => {}
        _ = &mut stopped => {}
    }
    // The session's Pods, also one whose creation was under way at the stop; standing
    // agents stay.
    let _ = tokio::time::timeout(DELETING, delete_session(&api, &plan.session)).await;
}
