//! The `tracer follow` command: from arguments to a running session and its summary.

use std::{io::IsTerminal as _, path::Path};

use crate::{
    cli::{AgentArgs, FollowArgs, Output},
    exit::Usage,
    files::{self, Overwrite},
    follow::{self, plan},
    journey::observation::IpProto,
    k8s::source::{ClusterHandle, ClusterSource},
    output::{Sink, SummarySink, json::JsonSink, text::TextSink, ui::UiSink},
    pipeline::{JourneyFilter, Pipeline, Session},
    record::writer::{Provenance, Recorder},
    topology::NamespaceScope,
    tui,
};

/// Journeys a live UI keeps (about 8 KB each: a long session stays under ~100 MB).
pub(super) const LIVE_RETENTION: usize = 10_000;

pub fn follow(args: FollowArgs) -> anyhow::Result<i32> {
    run(args, Role::Follow)
}

/// `tracer agent`: a record-only follow of one node, to a file for `tracer replay` to
/// stitch with the other nodes' recordings, or streamed to a `tracer follow --agent`.
pub fn agent(args: AgentArgs) -> anyhow::Result<i32> {
    let AgentArgs {
        follow: mut args,
        listen,
        reader_within,
        resume_within,
    } = args;
    if args.record.is_none() && listen.is_none() {
        return Err(Usage(
            "tracer agent records what its node sees: give it --record FILE (and replay the nodes' files together with `tracer replay a.trace b.trace …`) or --listen ADDR (for `tracer follow --agent ADDR`)".to_owned(),
        )
        .into());
    }
    if args.output.is_some() || args.flows || args.count.is_some() || !args.agents.is_empty() {
        return Err(Usage(
            "tracer agent shows no journeys (--output, --flows, --count and --agent are for follow and replay): it records them".to_owned(),
        )
        .into());
    }
    args.output = Some(Output::Summary);
    // Bound before anything is attached: a taken address is said at once.
    let listener = listen
        .map(|addr| {
            std::net::TcpListener::bind(addr)
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
        })
        .transpose()?;
    let (kubeconfig, context) = (args.kubeconfig.clone(), args.context.clone());
    let code = run(
        args,
        Role::Agent {
            stream: listener.as_ref().map(|listener| {
                Streaming::Listen(Listening {
                    listener,
                    reader_within,
                    resume_within,
                })
            }),
        },
    );
    // An agent that could not start keeps its Pod, for `follow` to read why (the Pod's
    // termination message); one whose session ran ends with it.
    if code.is_ok() {
        follow::pods::delete_own_pod(kubeconfig.as_deref(), context.as_deref());
    }
    code
}

/// One session of `tracer node-agent`, streamed to the reader that asked for it.
pub(super) fn agent_for_reader(
    mut args: FollowArgs,
    reader: &std::net::TcpStream,
) -> anyhow::Result<i32> {
    args.output = Some(Output::Summary);
    run(
        args,
        Role::Agent {
            stream: Some(Streaming::Connected(reader)),
        },
    )
}

/// Whether the session shows journeys or records for a merge (to a file, or streamed to
/// a reader).
#[derive(Clone, Copy)]
enum Role<'a> {
    Follow,
    Agent { stream: Option<Streaming<'a>> },
}

/// An agent's listener, and how long it waits for its reader: to come (`--reader-within`)
/// and to come back (`--resume-within`).
#[derive(Clone, Copy)]
struct Listening<'a> {
    listener: &'a std::net::TcpListener,
    reader_within: Option<std::time::Duration>,
    resume_within: Option<std::time::Duration>,
}

/// Where an agent's stream goes: the first reader that connects, or one connected.
#[derive(Clone, Copy)]
enum Streaming<'a> {
    Listen(Listening<'a>),
    Connected(&'a std::net::TcpStream),
}

impl Role<'_> {
    fn is_agent(self) -> bool {
        matches!(self, Self::Agent { .. })
    }
}

/// FROM and TO resolved against `model`, with the user's filters.
pub(super) fn plan_of(
    args: &FollowArgs,
    model: &crate::k8s::model::ClusterModel,
) -> Result<plan::FollowPlan, crate::k8s::resolve::ResolveError> {
    let protocol = args.proto.map(|p| match p {
        crate::cli::Protocol::Tcp => IpProto::Tcp,
        crate::cli::Protocol::Udp => IpProto::Udp,
        crate::cli::Protocol::Icmp => IpProto::Icmp,
    });
    plan::plan(
        model,
        plan::Asked {
            from: &args.from,
            to: &args.to,
            namespace: &args.namespace,
            filter: JourneyFilter {
                port: args.port,
                protocol,
            },
            namespaces: NamespaceScope::from_prefix(args.netns_prefix.clone()),
            node: args.node.clone(),
        },
    )
}

fn run(args: FollowArgs, role: Role<'_>) -> anyhow::Result<i32> {
    if !args.agents.is_empty() {
        return super::agents::follow(&args);
    }
    if args.agent_pods {
        return super::agents::follow_through_pods(&args);
    }
    // A refused --record file is a usage error: say so before anything else happens.
    if let Some(path) = &args.record {
        files::check(path, &recording_rules(args.force))?;
    }
    follow::check_privileges()?;
    follow::install_stop_handlers();
    let source = match &args.cluster_file {
        Some(path) => ClusterSource::File(path.clone()),
        None => ClusterSource::Api {
            kubeconfig: args.kubeconfig.clone(),
            context: args.context.clone(),
        },
    };
    let cluster = ClusterHandle::start(&source, args.api_timeout)?;
    let model = cluster.snapshot();
    let plan = plan_of(&args, &model)?;
    // Said as soon as the arguments are resolved; discovery and attaching follow.
    eprintln!(
        "following {} → {}\n  names from {}",
        plan::describe(&plan.from),
        plan::describe(&plan.to),
        cluster.describe()
    );
    let topology = follow::discover_topology(&model, &plan.namespaces, plan.node.as_deref());
    check_node(&model, &topology, plan.node.as_deref(), role)?;
    if let Some(elsewhere) = nodes_elsewhere(&args, &model, &plan, &topology, role) {
        eprintln!(
            "  node{} {} {} not on this machine: following through agent Pods instead (--local: only what this machine sees)",
            if elsewhere.len() == 1 { "" } else { "s" },
            elsewhere.join(", "),
            if elsewhere.len() == 1 { "is" } else { "are" },
        );
        match super::agents::follow_through_pods(&args) {
            Err(e) if e.is::<follow::pods::CannotStart>() => eprintln!(
                "  note: {e:#}: following on this machine only; its hops on {} will be missing",
                elsewhere.join(", ")
            ),
            done => return done,
        }
    }
    let attachments = follow::attachments(&topology, &plan.filter);
    for warning in follow::visibility_warnings(&topology, &plan) {
        eprintln!("  note: {warning}");
    }
    let mut kernel = follow::Kernel::attach(
        &plan.filter,
        &attachments,
        &follow::kernel::KernelOptions::of(&args),
    )?;
    let nodes = node_names(&topology);
    // An agent says it is ready only now, with every hook attached: traffic started
    // after this line is recorded whole.
    eprintln!(
        "  {}watching {} interfaces ({}) on {} ({}); Ctrl-C to stop",
        if role.is_agent() { "ready: " } else { "" },
        kernel.attached.len(),
        kernel.mode.name(),
        if nodes.is_empty() {
            "this host".to_owned()
        } else {
            nodes.join(", ")
        },
        if args.count.is_some() || args.duration.is_some() {
            "until a limit"
        } else {
            "until stopped"
        }
    );
    let output = args.output.unwrap_or(if std::io::stdout().is_terminal() {
        Output::Tui
    } else {
        Output::Text
    });
    let limits = follow::Limits {
        count: args.count,
        duration: args.duration,
        // Nothing to show and no journey limit: correlating would be wasted work (the flows
        // are something to show).
        record_only: output == Output::Summary && args.count.is_none() && !args.flows,
        end_with_recording: matches!(role, Role::Agent { stream: Some(_) }),
    };
    let stats = if args.kernel_stats {
        Some(follow::enable_kernel_stats()?)
    } else {
        None
    };
    let lab_clock = lab_clock_offset(&topology, plan.node.as_deref());
    let mut followed = Session {
        following: format!(
            "{} → {}",
            plan::describe(&plan.from),
            plan::describe(&plan.to)
        ),
        names_from: cluster.describe(),
        from_ips: plan.followed.from.clone(),
        to_ips: plan.followed.to.clone(),
        filter: plan.journeys,
        wall_offset_ns: crate::clock::wall_offset_ns(),
        boot_id: crate::clock::boot_id(),
        node: plan.node.clone(),
        attached: Some(kernel.mode.name().to_owned()),
        sample_shift: kernel.sample_shift,
    };
    if let Some(offset_ns) = lab_clock {
        // A lab node set apart by `lab up --clock-offset` records as a machine of its own
        // whose wall clock is off, as a real node's would be.
        followed.wall_offset_ns += offset_ns;
        followed.boot_id = followed
            .boot_id
            .map(|boot| format!("{boot}+{}", plan.node.as_deref().unwrap_or_default()));
        eprintln!(
            "  note: this lab node's clock is set {:+.3} ms off (tracer lab up --clock-offset): it records as a machine of its own",
            offset_ns as f64 / 1e6
        );
    }
    let mut recorder = match (&args.record, role) {
        (Some(path), _) => Some(start_recording(path, args.force)?),
        (None, Role::Agent { stream: Some(to) }) => {
            let (connected, resumable) = match to {
                Streaming::Listen(listening) => (
                    accept_reader(listening.listener, listening.reader_within)?,
                    listening
                        .resume_within
                        .map(|window| (listening.listener, window)),
                ),
                Streaming::Connected(reader) => {
                    (Some((reader.try_clone()?, reader.peer_addr()?)), None)
                }
            };
            match connected {
                Some((reader, peer)) => Some(stream_to(reader, peer, resumable)?),
                // Stopped before any reader came.
                None => return Ok(crate::exit::SUCCESS),
            }
        }
        _ => None,
    };
    let mut failed = false;
    let session = |sink: &mut dyn Sink| -> anyhow::Result<()> {
        let mut pipeline = Pipeline::new(sink, limits.count);
        let sources = follow::live::Sources {
            kernel: &mut kernel,
            cluster: &cluster,
            topology: &topology,
            plan: &plan,
        };
        let outcome = follow::live::run(
            sources,
            followed.clone(),
            &limits,
            &mut pipeline,
            recorder.take(),
        )?;
        let mut summary = outcome.summary;
        if stats.is_some() {
            for (program, runs, ns) in kernel.program_costs() {
                summary.notes.push(format!(
                    "kernel cost: {program}: {ns} ns per run over {runs} runs"
                ));
            }
            if let Some(taken) = kernel.hop_slots_taken() {
                summary.notes.push(format!(
                    "kernel counting: {taken} idle hop slots taken by other hops"
                ));
            }
        }
        if let Some(reason) = cluster.stale_reason() {
            summary.notes.push(format!(
                "names may be stale: the Kubernetes API stopped answering ({reason})"
            ));
        }
        failed = summary.failed;
        pipeline.sink().finish(&summary)?;
        Ok(())
    };
    let header = tui::Header {
        following: format!(
            "{} → {}",
            plan::describe(&plan.from),
            plan::describe(&plan.to)
        ),
        mode: tui::Mode::Live,
        recording: args.record.clone(),
        source: cluster.describe(),
    };
    show(output, args.flows, header, session)?;
    Ok(if failed {
        crate::exit::FAILURE
    } else {
        crate::exit::SUCCESS
    })
}

/// The clock offset `tracer lab up --clock-offset` gave `node`, when it is a lab node.
fn lab_clock_offset(topology: &crate::topology::Topology, node: Option<&str>) -> Option<i64> {
    let node = node?;
    topology.hosts.iter().find_map(|host| match &host.role {
        crate::topology::HostRole::Node { name } if name == node => {
            let netns = Path::new(&host.info.path).file_name()?.to_str()?;
            tracer_lab::node_clock_offset(netns).map(|(_, ns)| ns)
        }
        _ => None,
    })
}

/// The nodes the packets can cross that this machine does not hold, when `follow` may go
/// through agent Pods for them (not `--local`, names from the API, no `--node`).
fn nodes_elsewhere(
    args: &FollowArgs,
    model: &crate::k8s::ClusterModel,
    plan: &plan::FollowPlan,
    topology: &crate::topology::Topology,
    role: Role<'_>,
) -> Option<Vec<String>> {
    if role.is_agent() || args.local || args.cluster_file.is_some() || args.node.is_some() {
        return None;
    }
    let here = node_names(topology);
    let involved = follow::pods::involved_nodes(model, &plan.from, &plan.to).ok()?;
    let elsewhere: Vec<String> = involved.into_iter().filter(|n| !here.contains(n)).collect();
    (!elsewhere.is_empty()).then_some(elsewhere)
}

/// The nodes whose namespaces are traced here, sorted.
fn node_names(topology: &crate::topology::Topology) -> Vec<String> {
    let names: std::collections::BTreeSet<String> = topology
        .hosts
        .iter()
        .filter_map(|h| match &h.role {
            crate::topology::HostRole::Node { name } => Some(name.clone()),
            _ => None,
        })
        .collect();
    names.into_iter().collect()
}

/// `--node` must name a node whose namespace is on this machine; an agent without it must
/// be on a machine that holds one node, or its recording would mix several.
fn check_node(
    model: &crate::k8s::ClusterModel,
    topology: &crate::topology::Topology,
    node: Option<&str>,
    role: Role<'_>,
) -> anyhow::Result<()> {
    let here = node_names(topology);
    match node {
        Some(node) if model.nodes().all(|n| n.name != node) => Err(Usage(format!(
            "--node {node}: the cluster has no such node (it has {})",
            model
                .nodes()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into()),
        Some(node) if here.is_empty() => Err(anyhow::anyhow!(
            "--node {node}: that node's network namespace is not on this machine"
        )),
        None if role.is_agent() && here.len() > 1 => Err(Usage(format!(
            "this machine holds several nodes ({}): give the agent one with --node",
            here.join(", ")
        ))
        .into()),
        _ => Ok(()),
    }
}

/// Runs a live `session` into the sink `output` asks for: JSON, text or the summary on
/// stdout, or the terminal UI beside it (quitting the UI stops the session like Ctrl-C).
pub(super) fn show(
    output: Output,
    flows: bool,
    header: tui::Header,
    mut session: impl FnMut(&mut dyn Sink) -> anyhow::Result<()> + Send,
) -> anyhow::Result<()> {
    match output {
        Output::Json => session(&mut JsonSink::new(std::io::stdout().lock()).with_flows(flows)),
        Output::Text => session(&mut TextSink::new(std::io::stdout().lock()).with_flows(flows)),
        Output::Summary => session(&mut SummarySink::with_flows(flows)),
        Output::Tui => {
            let (tx, rx) = std::sync::mpsc::sync_channel(65_536);
            std::thread::scope(|scope| -> anyhow::Result<()> {
                let worker = scope.spawn(move || session(&mut UiSink::live(tx)));
                let first = if flows {
                    tui::state::View::Flows
                } else {
                    tui::state::View::Journeys
                };
                let ui = tui::event_loop::run_with_retention(header, rx, LIVE_RETENTION, first);
                follow::request_stop();
                let result = worker
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                ui?;
                match result {
                    // The UI closing first is how a TUI session normally ends.
                    Err(e)
                        if e.downcast_ref::<std::io::Error>()
                            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
                    {
                        Ok(())
                    }
                    other => other,
                }
            })
        }
    }
}

/// The rules the --record file is created by (also checked early, with these).
pub(super) fn recording_rules(force: bool) -> files::Rules<'static> {
    files::Rules {
        what: "recording",
        overwrite: Overwrite::from_force(force),
        streams: files::Streams::Refused,
        input: None,
    }
}

/// How often a streaming agent tells its reader how far it has read, even with no packet
/// passing: the reader hands on no node's packets until every node has read past them.
const HEARTBEAT_NS: u64 = 100_000_000;

/// Waits for the reader (`tracer follow --agent`); `None` when asked to stop first, or
/// when none came `within`.
fn accept_reader(
    listener: &std::net::TcpListener,
    within: Option<std::time::Duration>,
) -> anyhow::Result<Option<(std::net::TcpStream, std::net::SocketAddr)>> {
    let address = listener.local_addr()?;
    eprintln!("  waiting for a reader on {address} (tracer follow --agent {address})");
    listener.set_nonblocking(true)?;
    let deadline = within.map(|w| std::time::Instant::now() + w);
    loop {
        match listener.accept() {
            Ok(accepted) => return Ok(Some(accepted)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if follow::stop_requested() {
                    return Ok(None);
                }
                if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                    eprintln!("  no reader came: ending");
                    return Ok(None);
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => return Err(anyhow::anyhow!("cannot accept on {address}: {e}")),
        }
    }
}

/// Streams the session to `reader`; with `resumable`, one that may come back through the
/// listener within the window ([`follow::resumable`]).
fn stream_to(
    stream: std::net::TcpStream,
    peer: std::net::SocketAddr,
    resumable: Option<(&std::net::TcpListener, std::time::Duration)>,
) -> anyhow::Result<Recorder> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    // A reader that stops reading (paused, partitioned) must not stall this session: the
    // write fails, and the agent ends as when its reader goes.
    stream.set_write_timeout(Some(std::time::Duration::from_secs(5)))?;
    let name = std::path::PathBuf::from(format!("tcp://{peer}"));
    let recorder = match resumable {
        Some((listener, window)) => Recorder::streaming(
            follow::resumable::Resumable::new(
                stream,
                listener.try_clone()?,
                window,
                std::env::var(follow::resumable::RESUME_TOKEN_ENV).ok(),
            )?,
            &name,
            Provenance::here(),
            HEARTBEAT_NS,
        ),
        None => Recorder::streaming(stream, &name, Provenance::here(), HEARTBEAT_NS),
    }
    .map_err(|e| anyhow::anyhow!("cannot stream to {peer}: {e}"))?;
    eprintln!("  streaming to {peer}");
    Ok(recorder)
}

/// Creates the recording file by the rules of [`crate::files`] (private: it names a
/// cluster's insides; never through a symlink; an existing file only with --force) and
/// starts the recorder.
pub(super) fn start_recording(path: &Path, force: bool) -> anyhow::Result<Recorder> {
    // In place at once: a session cut short still leaves its recording at the path.
    let file = files::create(path, &recording_rules(force))?.persist()?;
    let recorder = Recorder::start(file, path, Provenance::here())
        .map_err(|e| anyhow::anyhow!("cannot record to {}: {e}", path.display()))?;
    eprintln!(
        "  recording to {} (headers only, mode 0600)",
        path.display()
    );
    Ok(recorder)
}
