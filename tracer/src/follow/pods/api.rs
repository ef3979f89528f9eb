//! The agent Pods' calls to the Kubernetes API: reading, waiting for, deleting and
//! reaching them (`pods/portforward`, carried over a loopback socket pair), and an agent
//! Pod deleting itself.

use std::{
    net::{TcpListener, TcpStream},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use futures::future::join_all;
use k8s_openapi::api::core::v1 as core;
use kube::api::{Api, DeleteParams, ListParams};

use super::{
    DELETING, NAME_LABEL, NODE_AGENT_LABEL, POD_NAME_ENV, POD_NAMESPACE_ENV, POLL, SESSION_LABEL,
    STARTING, STUCK,
};

/// An agent Pod of a session deletes itself when its session ends: its reader is gone (a
/// `follow` that was killed leaves no Pod behind), or the session ended and `follow`
/// deletes it anyway. (One that could not start keeps its Pod: `follow` reads why.) Standing agents have no such name and stay. Bounded: an API that
/// does not answer leaves the Pod to its deadline.
pub fn delete_own_pod(kubeconfig: Option<&std::path::Path>, context: Option<&str>) {
    let (Ok(name), Ok(namespace)) = (
        std::env::var(POD_NAME_ENV),
        std::env::var(POD_NAMESPACE_ENV),
    ) else {
        return;
    };
    let deleting = async {
        let client = client(kubeconfig, context).await?;
        Api::<core::Pod>::namespaced(client, &namespace)
            .delete(&name, &DeleteParams::default())
            .await?;
        anyhow::Ok(())
    };
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| {
            runtime.block_on(async {
                tokio::time::timeout(DELETING, deleting)
                    .await
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer in time")))
            })
        });
    match outcome {
        Ok(()) => eprintln!("  deleted this agent's Pod {namespace}/{name}"),
        // Already deleted by the `follow` that made it.
        Err(e) if format!("{e:#}").contains("NotFound") => {}
        Err(e) => eprintln!("  could not delete this agent's Pod {namespace}/{name}: {e:#}"),
    }
}

pub(super) async fn client(
    kubeconfig: Option<&std::path::Path>,
    context: Option<&str>,
) -> anyhow::Result<kube::Client> {
    use crate::k8s::kubeconfig;
    let origin = kubeconfig::choose(kubeconfig, &kubeconfig::Environment::from_process())?;
    let (config, _) = kubeconfig::load(&origin, context).await?;
    Ok(kube::Client::try_from(config)?)
}

pub(super) fn label(pair: (&str, &str)) -> String {
    format!("{}={}", pair.0, pair.1)
}

/// Deletes every Pod `pods` lists, at once.
pub(super) async fn delete_all(api: &Api<core::Pod>, pods: impl IntoIterator<Item = core::Pod>) {
    join_all(
        pods.into_iter()
            .filter_map(|p| p.metadata.name)
            .map(|name| async move {
                let _ = api.delete(&name, &DeleteParams::default()).await;
            }),
    )
    .await;
}

/// Deletes this session's agent Pods.
pub(super) async fn delete_session(api: &Api<core::Pod>, session: &str) {
    let selector = format!("{},{SESSION_LABEL}={session}", label(NAME_LABEL));
    if let Ok(list) = api.list(&ListParams::default().labels(&selector)).await {
        delete_all(api, list).await;
    }
}

/// Deletes agent Pods that have ended (left by a `follow` that was killed).
pub(super) async fn delete_finished(api: &Api<core::Pod>) {
    let Ok(list) = api
        .list(&ListParams::default().labels(&label(NAME_LABEL)))
        .await
    else {
        return;
    };
    let finished = list.into_iter().filter(|pod| {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        matches!(phase, Some("Succeeded" | "Failed"))
    });
    delete_all(api, finished).await;
}

/// The ready node agents of `tracer deploy`'s DaemonSet: (node, Pod).
pub(super) async fn standing_agents(api: &Api<core::Pod>) -> Vec<(String, String)> {
    let selector = label(NODE_AGENT_LABEL);
    let Ok(list) = api.list(&ListParams::default().labels(&selector)).await else {
        return Vec::new();
    };
    list.into_iter()
        .filter(|pod| is_ready(pod.status.as_ref()))
        .filter_map(|pod| Some((pod.spec?.node_name?, pod.metadata.name?)))
        .collect()
}

pub(super) fn is_ready(status: Option<&core::PodStatus>) -> bool {
    status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// Why a Pod will not become ready, if it will not.
pub(super) fn will_not_start(name: &str, status: &core::PodStatus) -> Option<String> {
    if let Some(phase @ ("Succeeded" | "Failed")) = status.phase.as_deref() {
        // The agent's own last words, else the Pod's reason.
        let said = status
            .container_statuses
            .iter()
            .flatten()
            .find_map(|c| c.state.as_ref()?.terminated.as_ref()?.message.clone())
            .or_else(|| status.message.clone());
        return Some(format!(
            "its Pod {name} ended ({phase}{})",
            said.map(|m| format!(": {}", m.trim())).unwrap_or_default()
        ));
    }
    status
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
        .find(|w| w.reason.as_deref().is_some_and(|r| STUCK.contains(&r)))
        .map(|w| {
            format!(
                "its Pod {name} cannot start ({}{})",
                w.reason.as_deref().unwrap_or_default(),
                w.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            )
        })
}

/// Waits for the Pod to be ready, opens its port-forward (and sends `request`, for a
/// standing agent) and carries it over a loopback socket pair; returns this process's end
/// and the future that carries the bytes.
pub(super) async fn reach(
    api: &Api<core::Pod>,
    name: &str,
    port: u16,
    request: Option<&str>,
) -> anyhow::Result<(TcpStream, impl Future<Output = ()> + use<>)> {
    wait_ready(api, name).await?;
    forward(api, name, port, request).await
}

/// Waits for the Pod to be ready, or for a reason it will not be.
pub(super) async fn wait_ready(api: &Api<core::Pod>, name: &str) -> anyhow::Result<()> {
    let until = Instant::now() + STARTING;
    loop {
        let pod = api.get(name).await.context("read the agent Pod")?;
        if is_ready(pod.status.as_ref()) {
            return Ok(());
        }
        if let Some(why) = pod.status.as_ref().and_then(|s| will_not_start(name, s)) {
            anyhow::bail!(why);
        }
        if Instant::now() >= until {
            anyhow::bail!(
                "its Pod {name} did not start within {} s",
                STARTING.as_secs()
            );
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Opens the Pod's port-forward (and sends `request` on it) and carries it over a loopback
/// socket pair; returns this process's end and the future that carries the bytes.
pub(super) async fn forward(
    api: &Api<core::Pod>,
    name: &str,
    port: u16,
    request: Option<&str>,
) -> anyhow::Result<(TcpStream, impl Future<Output = ()> + use<>)> {
    let mut forwarder = api
        .portforward(name, &[port])
        .await
        .context("open the port-forward")?;
    let mut remote = forwarder
        .take_stream(port)
        .context("the port-forward has no stream")?;
    let refused = forwarder.take_error(port);
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let mut ours = TcpStream::connect(listener.local_addr()?)?;
    let (theirs, peer) = listener.accept()?;
    // Only our own end may be the other end.
    if peer != ours.local_addr()? {
        anyhow::bail!("another process connected to the port-forward's loopback socket");
    }
    if let Some(request) = request {
        std::io::Write::write_all(&mut ours, request.as_bytes())?;
    }
    theirs.set_nonblocking(true)?;
    let mut theirs = tokio::net::TcpStream::from_std(theirs)?;
    let pod = name.to_owned();
    let carry = async move {
        let _ = tokio::io::copy_bidirectional(&mut remote, &mut theirs).await;
        // What the kubelet said when the port could not be reached, if it said anything.
        if let Some(refused) = refused
            && let Ok(Some(message)) =
                tokio::time::timeout(Duration::from_millis(100), refused).await
        {
            eprintln!("  agent Pod {pod}: port-forward: {message}");
        }
        drop(forwarder);
    };
    Ok((ours, carry))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1 as core;

    fn waiting(reason: &str) -> core::PodStatus {
        core::PodStatus {
            phase: Some("Pending".to_owned()),
            container_statuses: Some(vec![core::ContainerStatus {
                state: Some(core::ContainerState {
                    waiting: Some(core::ContainerStateWaiting {
                        reason: Some(reason.to_owned()),
                        message: Some("pull access denied".to_owned()),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    #[test]
    fn a_pod_that_will_not_start_says_why_at_once() {
        assert_eq!(
            will_not_start("a", &waiting("ImagePullBackOff")).as_deref(),
            Some("its Pod a cannot start (ImagePullBackOff: pull access denied)")
        );
        // Still being made: waited for.
        assert_eq!(will_not_start("a", &waiting("ContainerCreating")), None);
        let ended = core::PodStatus {
            phase: Some("Failed".to_owned()),
            message: Some(
                "Pod was active on the node longer than the specified deadline".to_owned(),
            ),
            ..Default::default()
        };
        assert!(
            will_not_start("a", &ended)
                .unwrap()
                .contains("ended (Failed: Pod was active")
        );
    }
}
