//! What the agent Pods are: the nodes a session needs them on, their arguments, and their
//! Pod spec — for `follow`'s short-lived Pods and for `tracer deploy`'s DaemonSet alike.
//!
//! The spec: host network and PID namespaces (the node's interfaces, and its Pods'
//! network namespaces through `/proc/PID/ns/net`); not privileged, every capability
//! dropped but those [`CAPABILITIES`] names, each for a reason; AppArmor unconfined
//! (the default profile forbids reading other profiles' processes); `/sys/fs/bpf`, the
//! kernel's BTF, `/run/netns` (with the host's later mounts propagated: namespaces made
//! after the agent started) and `/run/tracer` (the records `tracer cleanup` reads) from
//! the host; small requests; the agent's last words as its termination message.

use std::collections::BTreeSet;

use anyhow::Context as _;
use k8s_openapi::{api::core::v1 as core, apimachinery::pkg::api::resource::Quantity};

use crate::{
    cli::FollowArgs,
    k8s::{model::ClusterModel, resolve::Target},
};

/// The image `--agent-image` defaults to: this release of tracer (`cargo xtask image`
/// builds it; push it where the cluster pulls from, or give `--agent-image`).
pub const DEFAULT_IMAGE: &str = concat!("ghcr.io/tracer-dev/tracer:", env!("CARGO_PKG_VERSION"));

/// The port a standing node agent listens on, on the node's loopback. A session's own
/// agent Pods each get a port of their own ([`session_port`]).
pub const NODE_AGENT_PORT: u16 = 4790;

/// `app.kubernetes.io/name=tracer-agent` on every agent Pod.
pub const NAME_LABEL: (&str, &str) = ("app.kubernetes.io/name", "tracer-agent");
/// The standing agents' label (`tracer deploy`'s DaemonSet).
pub const NODE_AGENT_LABEL: (&str, &str) = ("app.kubernetes.io/name", "tracer-node-agent");
/// Which `follow` made the Pod.
pub const SESSION_LABEL: &str = "tracer.dev/session";
/// An agent Pod's own name and namespace (the downward API), for it to delete itself.
pub const POD_NAME_ENV: &str = "TRACER_POD_NAME";
pub const POD_NAMESPACE_ENV: &str = "TRACER_POD_NAMESPACE";

/// How long a session's agent waits for its reader before it ends (the reader connects
/// as soon as the Pod is ready; a `follow` killed before that leaves an agent that ends
/// by itself).
const READER_WITHIN: &str = "5m";

/// The capabilities an agent holds, and why: `follow`'s own
/// ([`crate::caps::FOLLOW_NEEDS`]: BPF, PERFMON, NET_ADMIN, SYS_ADMIN), and what a
/// container does not have by default that the host's root does.
pub const CAPABILITIES: [(&str, &str); 6] = [
    ("BPF", "load the programs, make maps"),
    ("PERFMON", "tracepoint programs"),
    ("NET_ADMIN", "attach TC programs"),
    ("SYS_ADMIN", "enter other network namespaces (setns)"),
    (
        "SYS_PTRACE",
        "read other processes' network namespaces (/proc/PID/ns/net)",
    ),
    (
        "NET_RAW",
        "read kube-proxy's rules where iptables is the legacy backend",
    ),
];

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

/// The loopback port a session's agents listen on: one of their own (two sessions on one
/// node, or an agent of a killed session still waiting, never meet), from the session id.
pub fn session_port(session: &str) -> u16 {
    let hash = session.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    40_000 + u16::try_from(hash % 20_000).unwrap_or(0)
}

/// The `tracer agent` arguments for `node`: what the user asked `follow`, scoped to it.
pub fn agent_args(args: &FollowArgs, node: &str, port: u16) -> Vec<String> {
    let mut argv = vec!["agent".to_owned()];
    argv.extend(session_args(args));
    argv.extend(["--node".to_owned(), node.to_owned()]);
    argv.extend(["--listen".to_owned(), format!("127.0.0.1:{port}")]);
    argv.extend(["--reader-within".to_owned(), READER_WITHIN.to_owned()]);
    argv.extend([
        "--resume-within".to_owned(),
        format!("{}ms", args.agent_resume_within.as_millis()),
    ]);
    if let Some(prefix) = &args.netns_prefix {
        argv.extend(["--netns-prefix".to_owned(), prefix.clone()]);
    }
    argv
}

/// What the user asked `follow`, as an agent's arguments (a standing agent's request).
pub fn session_args(args: &FollowArgs) -> Vec<String> {
    fn named(value: &impl clap::ValueEnum) -> String {
        value
            .to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }
    let mut argv: Vec<String> = [&args.from, &args.to, "-n", &args.namespace]
        .map(str::to_owned)
        .to_vec();
    if let Some(port) = args.port {
        argv.extend(["--port".to_owned(), port.to_string()]);
    }
    if let Some(proto) = args.proto {
        argv.extend(["--proto".to_owned(), named(&proto)]);
    }
    if args.attach != crate::follow::attach::AttachChoice::Auto {
        argv.extend(["--attach".to_owned(), named(&args.attach)]);
    }
    if args.drop_hook != crate::probes::kfree_skb::DropHookChoice::Auto {
        argv.extend(["--drop-hook".to_owned(), named(&args.drop_hook)]);
    }
    if args.sample.shift() > 0 {
        argv.extend(["--sample".to_owned(), args.sample.one_in().to_string()]);
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

fn host_path(
    name: &str,
    path: &str,
    kind: &str,
    read_only: bool,
    propagation: Option<&str>,
) -> (core::Volume, core::VolumeMount) {
    (
        core::Volume {
            name: name.to_owned(),
            host_path: Some(core::HostPathVolumeSource {
                path: path.to_owned(),
                type_: Some(kind.to_owned()),
            }),
            ..Default::default()
        },
        core::VolumeMount {
            name: name.to_owned(),
            mount_path: path.to_owned(),
            read_only: Some(read_only),
            mount_propagation: propagation.map(str::to_owned),
            ..Default::default()
        },
    )
}

/// The agent's Pod spec (without `nodeName`): also the DaemonSet's (`tracer deploy`).
pub fn agent_spec(image: &str, args: Vec<String>) -> core::PodSpec {
    let (volumes, mounts): (Vec<_>, Vec<_>) = [
        host_path("bpffs", "/sys/fs/bpf", "DirectoryOrCreate", false, None),
        host_path("btf", "/sys/kernel/btf", "Directory", true, None),
        // Named network namespaces (`ip netns`, containerd's `cni-…`): later ones too.
        host_path(
            "netns",
            "/run/netns",
            "DirectoryOrCreate",
            true,
            Some("HostToContainer"),
        ),
        // The runs `tracer cleanup` on the host reads (netlink filters of a killed agent).
        host_path("runs", "/run/tracer", "DirectoryOrCreate", false, None),
    ]
    .into_iter()
    .unzip();
    let requests = [("cpu", "100m"), ("memory", "128Mi")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Quantity(v.to_owned())))
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
            // Why an agent ended shows in the Pod's status.
            termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
            resources: Some(core::ResourceRequirements {
                requests: Some(requests),
                ..Default::default()
            }),
            security_context: Some(core::SecurityContext {
                privileged: Some(false),
                allow_privilege_escalation: Some(false),
                capabilities: Some(core::Capabilities {
                    add: Some(CAPABILITIES.iter().map(|(c, _)| (*c).to_owned()).collect()),
                    drop: Some(vec!["ALL".to_owned()]),
                }),
                app_armor_profile: Some(core::AppArmorProfile {
                    type_: "Unconfined".to_owned(),
                    ..Default::default()
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

/// The agent Pod for `node`, listening on `port`; `token` is the session's secret that a
/// reader coming back presents ([`crate::follow::resumable`]).
pub fn agent_pod(
    args: &FollowArgs,
    node: &str,
    session: &str,
    port: u16,
    token: &str,
) -> core::Pod {
    let mut spec = agent_spec(&args.agent_image, agent_args(args, node, port));
    // In the environment, not the arguments: a node's processes can read each other's
    // command lines, not their environments.
    let own = |name: &str, path: &str| core::EnvVar {
        name: name.to_owned(),
        value_from: Some(core::EnvVarSource {
            field_ref: Some(core::ObjectFieldSelector {
                field_path: path.to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    spec.containers[0].env = Some(vec![
        core::EnvVar {
            name: crate::follow::resumable::RESUME_TOKEN_ENV.to_owned(),
            value: Some(token.to_owned()),
            ..Default::default()
        },
        // Which Pod it is: it deletes itself when it ends ([`super::delete_own_pod`]).
        own(POD_NAME_ENV, "metadata.name"),
        own(POD_NAMESPACE_ENV, "metadata.namespace"),
    ]);
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
        format!("127.0.0.1:{NODE_AGENT_PORT}"),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_capabilities_cover_what_follow_checks_for() {
        for needed in crate::caps::FOLLOW_NEEDS {
            let name = needed.name.trim_start_matches("CAP_");
            assert!(CAPABILITIES.iter().any(|(c, _)| *c == name), "{name}");
        }
    }

    #[test]
    fn sessions_get_ports_of_their_own() {
        let ports: BTreeSet<u16> = (0..100).map(|i| session_port(&format!("{i:x}"))).collect();
        assert!(ports.len() > 90, "{}", ports.len());
        assert!(ports.iter().all(|p| (40_000..60_000).contains(p)));
    }

    #[test]
    fn the_rbac_file_names_what_the_pods_use() {
        let rbac = include_str!("../../../../deploy/rbac.yaml");
        let spec = agent_spec("img", Vec::new());
        let account = spec.service_account_name.unwrap();
        assert!(rbac.contains(&format!(
            "kind: ServiceAccount\nmetadata:\n  name: {account}"
        )));
        for resource in ["\"pods\"", "\"pods/portforward\"", "\"endpointslices\""] {
            assert!(rbac.contains(resource), "{resource}");
        }
    }
}
