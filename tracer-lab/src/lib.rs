//! `tracer lab`: the seed's 3-node cluster rebuilt from network namespaces on this machine.
//!
//! A crate of its own, apart from the product: `tracer` embeds [`LabArgs`] as its `lab`
//! subcommand and calls [`run`], and knows nothing else of it. Tools reach the lab as they
//! reach any cluster, through the kubeconfig `up` writes ([`kubeconfig_path`]) and the
//! namespaces it names `tracer-lab-…`.
//!
//! `spec` describes the cluster as data; `plan` turns it into `ip`/`bridge` batches,
//! sysctls and (via `kube_proxy`) kube-proxy's rules in the mode asked for (`--proxy-mode
//! iptables|nftables|ipvs`); `apply` runs them inside the lab's namespaces; `state` records
//! what was created so `down` removes exactly that; `daemon` runs the Pods' HTTP servers
//! (`web`) and the Kubernetes API (`api`).
//!
//! The cluster is the scenario's seed plus the Pod changes made since `up`
//! ([`spec::PodChange`], kept in `state`). `replace-pod` ([`replace_pod`]) replaces one
//! Deployment Pod the way its ReplicaSet does: a new name, a new veth, the same node, a new
//! address from the node's block (or the old one with `--reuse-ip`). It reuses the scenario
//! switch's machinery: the daemon picks the new cluster up from the state and the API emits
//! the differences as watch events (DELETED, ADDED, Endpoints and EndpointSlice MODIFIED),
//! and kube-proxy's rules are regenerated from the same cluster. The order keeps the
//! Service answering: a new address comes up (namespace, veth, HTTP server, API, then
//! iptables) before the old Pod leaves (iptables, API and server, then veth and namespace);
//! with `--reuse-ip` the old Pod leaves first, since an address cannot be in two Pods.
//!
//! Safety rules: everything the lab creates lives in namespaces named `tracer-lab-…`, which
//! `up` records before creating; `up` refuses to adopt a namespace of that name it did not
//! record; `down` deletes only recorded ones. The host's own namespace is never modified.
//!
//! Tests build labs of their own beside a running one with `TRACER_LAB_PREFIX` (the
//! namespaces' prefix; the state then lives in `/run/<prefix>state`).

pub mod agent_runtime;
pub mod api;
mod apply;
pub mod cli;
mod daemon;
mod kube_proxy;
mod plan;
pub mod spec;
mod state;
mod web;

use std::{
    fmt::Write as _,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
pub use cli::{LabArgs, run};
use spec::{Cluster, ProxyMode, Scenario};
use state::State;

/// The lab needs root; the `tracer` binary turns this into its "missing privileges" exit
/// status.
#[derive(Debug, thiserror::Error)]
#[error(
    "the lab creates network namespaces and needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN): run it with sudo"
)]
pub struct NeedsRoot;

/// A lab command given something it cannot use (an unknown scenario); the `tracer` binary
/// turns this into its "invalid usage" exit status.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadUsage(pub String);

/// The kernel lacks what the command needs (IPVS for `--proxy-mode ipvs`); the `tracer`
/// binary turns this into its "kernel cannot support the command" exit status.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct KernelLacks(pub String);

/// Where `up` writes the lab's kubeconfig (`/run/tracer-lab/kubeconfig` for the default
/// lab): give it to kubectl and `tracer follow` with `--kubeconfig` or `$KUBECONFIG`.
pub fn kubeconfig_path() -> std::path::PathBuf {
    State::open(&State::default_dir()).kubeconfig_path()
}

/// Refuses early, with the reason, when the lab cannot be built here.
fn preflight() -> anyhow::Result<()> {
    // SAFETY: trivial syscall.
    if unsafe { libc::geteuid() } != 0 {
        return Err(NeedsRoot.into());
    }
    for tool in ["ip", "bridge", "iptables-restore"] {
        if !apply::on_path(tool) {
            bail!(
                "`{tool}` is missing: the lab needs iproute2 and iptables (run scripts/setup.sh, or apt-get install iproute2 iptables)"
            );
        }
    }
    Ok(())
}

/// Refuses, with the reason, a proxy mode this machine cannot run: its tools (Debian's
/// `nftables`, `ipvsadm` and `ipset`, which scripts/setup.sh installs) and, for IPVS, the
/// kernel's IP Virtual Server, loaded as kube-proxy loads it (`modprobe ip_vs`).
fn preflight_mode(mode: ProxyMode) -> anyhow::Result<()> {
    let (tools, package): (&[&str], &str) = match mode {
        ProxyMode::Iptables => (&[], ""),
        ProxyMode::Nftables => (&["nft"], "nftables"),
        ProxyMode::Ipvs => (&["ipvsadm", "ipset"], "ipvsadm ipset"),
    };
    for tool in tools {
        if !apply::on_path(tool) {
            bail!(
                "`{tool}` is missing: --proxy-mode {mode} needs it (run scripts/setup.sh, or apt-get install {package})"
            );
        }
    }
    if mode == ProxyMode::Ipvs && !apply::ipvs_loaded() {
        let modprobe = Command::new("modprobe")
            .args(["-q", "ip_vs"])
            .stderr(Stdio::null())
            .status();
        if !apply::ipvs_loaded() {
            return Err(
                KernelLacks(ipvs_missing_reason(modprobe.is_ok_and(|s| s.success()))).into(),
            );
        }
    }
    Ok(())
}

/// Why IPVS is not there, as exactly as this machine can say.
fn ipvs_missing_reason(modprobe_ok: bool) -> String {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let built_without = Command::new("zcat")
        .arg("/proc/config.gz")
        .output()
        .is_ok_and(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l == "# CONFIG_IP_VS is not set")
        });
    let why = if built_without {
        "it was built without IP Virtual Server (CONFIG_IP_VS is not set in /proc/config.gz)"
            .to_owned()
    } else if modprobe_ok {
        "/proc/net/ip_vs is still absent after modprobe ip_vs".to_owned()
    } else {
        format!("modprobe ip_vs failed (no module ip_vs in /lib/modules/{release})")
    };
    format!(
        "--proxy-mode ipvs needs the kernel's IP Virtual Server (ip_vs), and this kernel ({release}) has none: {why}; use --proxy-mode iptables or nftables here, or a kernel with IPVS"
    )
}

/// `cpu1=+40ms,gpu1=-3ms` → each node's clock offset in nanoseconds; "" → none.
pub fn parse_clock_offsets(text: &str) -> Result<Vec<(String, i64)>, BadUsage> {
    let nodes = Cluster::seed(Scenario::Healthy).nodes;
    let mut offsets: Vec<(String, i64)> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let bad = |why: &str| BadUsage(format!("--clock-offset {item}: {why}"));
        let (node, offset) = item
            .split_once('=')
            .ok_or_else(|| bad("expected NODE=OFFSET, e.g. cpu1=+40ms"))?;
        if !nodes.iter().any(|n| n.name == node) {
            let names: Vec<&str> = nodes.iter().map(|n| n.name).collect();
            return Err(bad(&format!(
                "no node {node} (nodes: {})",
                names.join(", ")
            )));
        }
        let (negative, magnitude) = match offset.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, offset.strip_prefix('+').unwrap_or(offset)),
        };
        let (number, unit) = magnitude.split_at(
            magnitude
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(magnitude.len()),
        );
        let scale: i64 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            _ => return Err(bad("the offset needs a unit: ns, us, ms or s")),
        };
        let ns = number
            .parse::<i64>()
            .ok()
            .and_then(|n| n.checked_mul(scale))
            .filter(|ns| *ns <= 10_000_000_000)
            .ok_or_else(|| bad("not an offset from -10s to +10s"))?;
        offsets.retain(|(n, _)| n != node);
        offsets.push((node.to_owned(), if negative { -ns } else { ns }));
    }
    Ok(offsets)
}

/// The clock offset `lab up --clock-offset` gave the lab node whose network namespace is
/// named `netns` (`tracer-lab-cpu1`): `(node, nanoseconds)`; `None` for any other namespace,
/// or a node whose clock was left alone.
pub fn node_clock_offset(netns: &str) -> Option<(String, i64)> {
    Cluster::seed(Scenario::Healthy)
        .nodes
        .iter()
        .find_map(|node| {
            let prefix = netns.strip_suffix(node.name)?;
            let state = State::open(&State::dir_of_prefix(prefix));
            state
                .clock_offsets()
                .into_iter()
                .find(|(n, ns)| n == node.name && *ns != 0)
        })
}

pub fn parse_proxy_mode(name: &str) -> Result<ProxyMode, BadUsage> {
    ProxyMode::from_name(name).ok_or_else(|| {
        let valid: Vec<_> = ProxyMode::ALL.iter().map(|m| m.name()).collect();
        BadUsage(format!(
            "unknown proxy mode `{name}`; valid modes: {}",
            valid.join(", ")
        ))
    })
}

pub fn parse_scenario(name: &str) -> Result<Scenario, BadUsage> {
    Scenario::from_name(name).ok_or_else(|| {
        let valid: Vec<_> = Scenario::ALL.iter().map(|s| s.name()).collect();
        BadUsage(format!(
            "unknown scenario `{name}`; valid scenarios: {}",
            valid.join(", ")
        ))
    })
}

/// Builds the lab if needed and applies `scenario` with kube-proxy in `mode`; prints where
/// the kubeconfig is.
pub fn up(scenario: Scenario, mode: ProxyMode, clocks: &[(String, i64)]) -> anyhow::Result<()> {
    preflight()?;
    preflight_mode(mode)?;
    let started = Instant::now();
    let state = State::open(&State::default_dir());
    state
        .ensure_dir()
        .context("create the lab's state directory")?;
    let cluster = state.cluster_in(scenario);
    let wanted = plan::namespaces(&cluster);
    let existing = apply::existing_namespaces();
    let recorded = state.namespaces();

    // Refuse to adopt anything of ours by name that we did not create.
    let foreign: Vec<_> = wanted
        .iter()
        .filter(|n| existing.contains(n) && !recorded.contains(n))
        .collect();
    if !foreign.is_empty() {
        bail!(
            "network namespace(s) {} exist but were not created by `tracer lab`; refusing to touch them (remove them yourself if they are stale)",
            foreign
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    let complete = state.is_built() && wanted.iter().all(|n| existing.contains(n));
    if !complete {
        // A crashed or partial `up`: start from nothing rather than patch an unknown state.
        teardown_namespaces(&state)?;
        state.record_namespaces(&wanted)?;
        apply::create_namespaces(&wanted)?;
        let (batches, sysctls) = plan::topology(&cluster);
        for batch in &batches {
            apply::batch(batch)?;
        }
        for sysctl in &sysctls {
            apply::sysctl(sysctl)?;
        }
        state.mark_built()?;
    } else {
        // Pods of an interrupted `replace-pod`, recorded but no longer wanted.
        for name in recorded.iter().filter(|n| !wanted.contains(n)) {
            if existing.contains(name) {
                apply::delete_namespace(name)?;
            }
        }
    }
    for batch in &plan::scenario(&cluster) {
        apply::batch(batch)?;
    }
    for node in &plan::kube_proxy_rules(&cluster, mode) {
        apply::kube_proxy(node)?;
    }
    state.set_scenario(scenario)?;
    state.set_proxy_mode(mode)?;
    state.set_clock_offsets(clocks)?;
    ensure_daemon(&state)?;
    println!(
        "lab up: scenario {scenario} ({}), kube-proxy in {mode} mode, in {:.1}s",
        scenario.description(),
        started.elapsed().as_secs_f64()
    );
    let kubeconfig = state.kubeconfig_path();
    println!("kubeconfig: {}", kubeconfig.display());
    println!(
        "point kubectl and tracer at it: export KUBECONFIG={0} (or --kubeconfig {0})",
        kubeconfig.display()
    );
    println!("try: tracer lab exec nettest -- curl -s 10.109.60.89");
    Ok(())
}

fn ensure_daemon(state: &State) -> anyhow::Result<()> {
    if state.daemon_pid().is_some() {
        return Ok(());
    }
    let _ = std::fs::remove_file(state.kubeconfig_path());
    let log = std::fs::File::create(state.daemon_log_path())?;
    let exe = std::env::current_exe().context("find the tracer binary")?;
    let mut command = Command::new(exe);
    command
        .args(["lab", "daemon"])
        .env("TRACER_LAB_STATE_DIR", state.dir())
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // Its own session: the daemon outlives `lab up` and the terminal it ran in.
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        use std::os::unix::process::CommandExt as _;
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = command.spawn().context("start the lab daemon")?;
    state.set_daemon_pid(child.id())?;
    let started = Instant::now();
    while !state.kubeconfig_path().exists() {
        // Our own child: `try_wait` sees its exit (and reaps it) the moment it happens.
        let exited = child.try_wait().context("watch the lab daemon")?;
        if exited.is_none() && started.elapsed() < DAEMON_START_LIMIT {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let how = match exited {
            Some(status) => format!("it exited ({status})"),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                "it wrote no kubeconfig, so it was stopped".to_owned()
            }
        };
        let log = std::fs::read_to_string(state.daemon_log_path()).unwrap_or_default();
        bail!(
            "the lab daemon did not start: {how} after {:.1}s; its log ({}): {}",
            started.elapsed().as_secs_f64(),
            state.daemon_log_path().display(),
            if log.trim().is_empty() {
                "empty"
            } else {
                log.trim()
            }
        );
    }
    Ok(())
}

/// How long the daemon may take to serve its Pods and API: it binds a few sockets and
/// writes the kubeconfig; a generous bound, so that only a daemon that is stuck reaches it.
const DAEMON_START_LIMIT: Duration = Duration::from_secs(10);

fn teardown_namespaces(state: &State) -> anyhow::Result<()> {
    let existing = apply::existing_namespaces();
    for name in state.namespaces().iter().rev() {
        if existing.contains(name) {
            apply::delete_namespace(name)?;
        }
    }
    Ok(())
}

/// The processes whose parent is `pid`, from `/proc/*/stat`.
fn children_of(pid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&child| proc_stat(child).is_some_and(|(_, parent)| parent == pid))
        .collect()
}

/// Whether `pid` exists and has not ended (a zombie has).
fn running(pid: i32) -> bool {
    proc_stat(pid).is_some_and(|(state, _)| state != 'Z')
}

/// A process's state and parent, from `/proc/PID/stat` (after the parenthesised name,
/// which may itself hold spaces and parentheses).
fn proc_stat(pid: i32) -> Option<(char, i32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    Some((state, parent))
}

/// Removes every namespace, process and file the lab created.
pub fn down() -> anyhow::Result<()> {
    preflight()?;
    let state = State::open(&State::default_dir());
    if let Some(pid) = state.daemon_pid() {
        // The agents the daemon runs for Pods made through its API are its children, and
        // outlive a killed daemon: asked to end first (each ends on SIGTERM at once,
        // detaching its programs), killed if they have not when the daemon is gone.
        let agents = children_of(pid);
        for &agent in &agents {
            // SAFETY: signalling a child of our daemon, found just now.
            unsafe { libc::kill(agent, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while agents.iter().any(|&agent| running(agent)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: signalling a process verified to be our daemon.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        for agent in agents.into_iter().filter(|&agent| running(agent)) {
            // SAFETY: as above; it did not end in time.
            unsafe { libc::kill(agent, libc::SIGKILL) };
        }
        // Gone, not only ended: until its new parent reaps it, its pid is taken.
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::path::Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    teardown_namespaces(&state)?;
    state.remove().context("remove the lab's state directory")?;
    println!("lab down: nothing of the lab is left");
    Ok(())
}

pub fn scenarios() -> String {
    let mut out = String::new();
    for s in Scenario::ALL {
        let _ = writeln!(out, "{:<16} {}", s.name(), s.description());
    }
    out
}

pub fn status() -> anyhow::Result<String> {
    let state = State::open(&State::default_dir());
    let Some(cluster) = state.cluster() else {
        return Ok("lab is down (tracer lab up to start it)\n".to_owned());
    };
    let scenario = cluster.scenario;
    let existing = apply::existing_namespaces();
    let mut out = String::new();
    let _ = writeln!(out, "scenario   {scenario}: {}", scenario.description());
    let mode = state.proxy_mode();
    let _ = writeln!(out, "kube-proxy {mode} mode: {}", mode.description());
    for (node, ns) in state.clock_offsets() {
        let _ = writeln!(
            out,
            "clock      {node}'s is {:+.3} ms off (its agent records as a machine of its own)",
            ns as f64 / 1e6
        );
    }
    match state.daemon_pid() {
        Some(pid) => {
            let _ = writeln!(
                out,
                "daemon     running (pid {pid}), kubeconfig {}",
                state.kubeconfig_path().display()
            );
        }
        None => {
            let _ = writeln!(
                out,
                "daemon     NOT running: Pods do not answer HTTP and the API is down (run tracer lab up)"
            );
        }
    }
    let _ = writeln!(out, "\nNODE   IP             POD BLOCK          NAMESPACE");
    for node in &cluster.nodes {
        let ns = plan::node_netns(node.name);
        let mark = if existing.contains(&ns) {
            ""
        } else {
            "  (missing)"
        };
        let _ = writeln!(
            out,
            "{:<6} {:<14} {:<18} {ns}{mark}",
            node.name,
            node.ip.to_string(),
            node.block.to_string()
        );
    }
    let _ = writeln!(
        out,
        "\nPOD                          NODE   IP              HOST VETH        READY"
    );
    for pod in &cluster.pods {
        let _ = writeln!(
            out,
            "{:<28} {:<6} {:<15} {:<16} {}",
            pod.name,
            pod.node,
            pod.ip.to_string(),
            pod.host_veth(),
            if pod.ready { "yes" } else { "no" }
        );
    }
    if !cluster.retired.is_empty() {
        let _ = writeln!(out, "\nREPLACED (tracer lab replace-pod)");
        for pod in &cluster.retired {
            let _ = writeln!(out, "{:<28} {:<6} {}", pod.name, pod.node, pod.ip);
        }
    }
    Ok(out)
}

/// Runs a command in a lab Pod's (or node's) namespace; returns its exit status.
pub fn exec(target: &str, command: &[String]) -> anyhow::Result<i32> {
    preflight()?;
    let state = State::open(&State::default_dir());
    let cluster = state
        .cluster()
        .context("the lab is down: run `tracer lab up` first")?;
    let netns = resolve_exec_target(&cluster, target)?;
    let status = Command::new("ip")
        .args(["netns", "exec", &netns])
        .args(command)
        .status()
        .with_context(|| format!("run {command:?} in {netns}"))?;
    Ok(status.code().unwrap_or(1))
}

/// A Pod name (or a unique prefix, like `kubectl exec deploy/…` users expect) or a node name.
fn resolve_exec_target(cluster: &Cluster, target: &str) -> anyhow::Result<String> {
    let target = target.strip_prefix("default/").unwrap_or(target);
    if let Some(node) = cluster.node(target) {
        return Ok(plan::node_netns(node.name));
    }
    resolve_pod(cluster, target).map(|pod| plan::pod_netns(&pod.name))
}

/// A Pod by name or unique name prefix (`default/` allowed).
fn resolve_pod<'a>(cluster: &'a Cluster, target: &str) -> anyhow::Result<&'a spec::Pod> {
    let target = target.strip_prefix("default/").unwrap_or(target);
    if let Some(pod) = cluster.pod(target) {
        return Ok(pod);
    }
    let matches: Vec<_> = cluster
        .pods
        .iter()
        .filter(|p| p.name.starts_with(target))
        .collect();
    match matches.as_slice() {
        [one] => Ok(one),
        [] => {
            let names: Vec<_> = cluster.pods.iter().map(|p| p.name.as_str()).collect();
            bail!(
                "no lab Pod or node `{target}` in namespace default; Pods: {}; nodes: cpu1, cpu2, gpu1",
                names.join(", ")
            )
        }
        many => bail!(
            "`{target}` matches several Pods: {}",
            many.iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `tracer lab replace-pod POD [--reuse-ip]`: replaces a Deployment's Pod as its ReplicaSet
/// would (see the module doc for the order of steps); prints the new Pod.
pub fn replace_pod(target: &str, reuse_ip: bool) -> anyhow::Result<()> {
    preflight()?;
    let started = Instant::now();
    let state = State::open(&State::default_dir());
    let cluster = state
        .cluster()
        .context("the lab is down: run `tracer lab up` first")?;
    let old = resolve_pod(&cluster, target)?.name.clone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    // Random-looking and never repeated: the time and this process seed the name.
    let seed = format!("{old}/{}/{}", now.as_nanos(), std::process::id());
    let rollout = cluster.rollout(&old, reuse_ip, &seed, now.as_secs())?;
    let daemon = state.daemon_pid().is_some();
    let mode = state.proxy_mode();
    let mut cluster = cluster;
    for change in &rollout.changes {
        let next = cluster.clone().with_changes(std::slice::from_ref(change));
        match change {
            spec::PodChange::Add { .. } => {
                let netns = plan::pod_netns(&rollout.new.name);
                state.record_namespaces(std::slice::from_ref(&netns))?;
                apply::create_namespaces(std::slice::from_ref(&netns))?;
                let (node, sysctls, inside) = plan::add_pod(&rollout.new);
                apply::batch(&node)?;
                for sysctl in &sysctls {
                    apply::sysctl(sysctl)?;
                }
                apply::batch(&inside)?;
                // Serving (HTTP, API) before kube-proxy sends it traffic.
                state.push_change(change)?;
                wait_for_daemon(&state, daemon)?;
                for node in &plan::kube_proxy_rules(&next, mode) {
                    apply::kube_proxy(node)?;
                }
            }
            spec::PodChange::Remove { .. } => {
                // No new connections to it, then out of the API, then unwired.
                for node in &plan::kube_proxy_rules(&next, mode) {
                    apply::kube_proxy(node)?;
                }
                state.push_change(change)?;
                wait_for_daemon(&state, daemon)?;
                apply::batch(&plan::remove_pod(&rollout.old))?;
                let netns = plan::pod_netns(&rollout.old.name);
                if apply::existing_namespaces().contains(&netns) {
                    apply::delete_namespace(&netns)?;
                }
            }
        }
        cluster = next;
    }
    println!(
        "replaced {} ({}, {}) with {} ({}, {}) in {:.1}s",
        rollout.old.name,
        rollout.old.ip,
        rollout.old.node,
        rollout.new.name,
        rollout.new.ip,
        rollout.new.node,
        started.elapsed().as_secs_f64()
    );
    if !daemon {
        println!(
            "note: the lab daemon is not running, so the API and the Pods' HTTP servers do not show this (run tracer lab up)"
        );
    }
    Ok(())
}

/// Waits until the daemon serves every recorded change (API objects and HTTP servers).
fn wait_for_daemon(state: &State, running: bool) -> anyhow::Result<()> {
    if !running {
        return Ok(());
    }
    let wanted = state.changes().len();
    let deadline = Instant::now() + Duration::from_secs(10);
    while state.applied().is_none_or(|n| n < wanted) {
        if Instant::now() > deadline || state.daemon_pid().is_none() {
            let log = std::fs::read_to_string(state.daemon_log_path()).unwrap_or_default();
            bail!(
                "the lab daemon did not pick up the change within 10 s: {}",
                log.trim()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_children_are_found_and_their_end_is_seen() {
        let me = i32::try_from(std::process::id()).unwrap();
        // SAFETY: getppid has no preconditions.
        assert_eq!(
            proc_stat(me).map(|(_, parent)| parent),
            Some(unsafe { libc::getppid() })
        );
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        assert!(children_of(me).contains(&pid));
        assert!(running(pid));
        child.kill().unwrap();
        // Killed but not reaped: a zombie, which has ended.
        while proc_stat(pid).is_some_and(|(state, _)| state != 'Z') {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!running(pid));
        child.wait().unwrap();
        assert!(!children_of(me).contains(&pid));
    }

    #[test]
    fn exec_targets_resolve_by_name_prefix_or_node() {
        let cluster = Cluster::seed(Scenario::Healthy);
        assert_eq!(
            resolve_exec_target(&cluster, "nettest").unwrap(),
            "tracer-lab-pod-nettest"
        );
        assert_eq!(
            resolve_exec_target(&cluster, "cpu1").unwrap(),
            "tracer-lab-cpu1"
        );
        assert_eq!(
            resolve_exec_target(&cluster, "webapp-5b8f6d7c9-h4").unwrap(),
            "tracer-lab-pod-webapp-5b8f6d7c9-h4t2m"
        );
        let err = resolve_exec_target(&cluster, "nginx-test")
            .unwrap_err()
            .to_string();
        assert!(err.contains("several Pods"), "{err}");
        let err = resolve_exec_target(&cluster, "nope")
            .unwrap_err()
            .to_string();
        assert!(err.contains("namespace default"), "{err}");
    }

    #[test]
    fn clock_offsets_are_parsed_with_their_sign_and_unit_and_checked() {
        assert_eq!(
            parse_clock_offsets("cpu1=+40ms, gpu1=-3ms,cpu2=250us").unwrap(),
            vec![
                ("cpu1".to_owned(), 40_000_000),
                ("gpu1".to_owned(), -3_000_000),
                ("cpu2".to_owned(), 250_000)
            ]
        );
        assert!(parse_clock_offsets("").unwrap().is_empty());
        for (bad, why) in [
            ("cpu9=+1ms", "no node cpu9"),
            ("cpu1", "NODE=OFFSET"),
            ("cpu1=40", "needs a unit"),
            ("cpu1=+11s", "-10s to +10s"),
        ] {
            let err = parse_clock_offsets(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn unknown_proxy_modes_list_the_valid_ones() {
        let err = parse_proxy_mode("userspace").unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown proxy mode `userspace`; valid modes: iptables, nftables, ipvs"
        );
        assert_eq!(parse_proxy_mode("ipvs").unwrap(), ProxyMode::Ipvs);
    }

    #[test]
    fn unknown_scenarios_list_the_valid_ones() {
        let err = parse_scenario("sunny").unwrap_err().to_string();
        assert!(err.contains(
            "healthy, wrong-interface, vxlan, cross-subnet, mtu-blackhole, no-endpoints"
        ));
        assert!(scenarios().lines().count() == 6);
    }
}
