//! `tracer follow FROM TO --agent ADDR …`: following through node agents. Each node's
//! `tracer agent FROM TO --listen ADDR` streams what its kernel sees, in the recording
//! format; this process connects to every one, stitches the streams as `tracer replay`
//! stitches per-node recordings ([`crate::replay::merge`]), and shows the journeys as they
//! close. It attaches nothing, so it needs no privileges.
//!
//! Each agent says how far it has read at least every 100 ms, even with no packet passing,
//! and no node's packets are handed on before every agent has read past them, so a journey
//! is told once the slowest node has spoken. An agent silent for [`SILENCE`] (killed,
//! partitioned) is given up: its stream ends, the others go on, and the summary says so.
//! An agent Pod's stream is first opened again and resumed ([`super::pods::resume`]).
//! Clocks: agents of one kernel (the lab) share one; agents of different machines are put
//! on one timeline by their wall clocks, then by the packets that crossed between them as
//! the session began (`replay::merge::live_clocks`): what was read is held until then.

use std::{
    net::TcpStream,
    time::{Duration, Instant},
};

use super::{
    command, plan,
    pods::{self, AgentPods},
    signals::stop_requested,
};
use crate::{
    cli::{FollowArgs, Output},
    k8s::source::{ClusterHandle, ClusterSource},
    output::Summary,
    pipeline::{Input, counters::ReadCounters},
    record::writer::Recorder,
    replay::{
        Inputs,
        merge::{LiveStream, Merged},
        run_until,
    },
    tui,
};

/// How long an agent may take to answer the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An agent silent this long is given up (it says how far it has read every 100 ms).
const SILENCE: Duration = Duration::from_secs(5);

/// How long an agent may take to attach before its stream starts.
const ATTACHING: Duration = Duration::from_secs(300);

/// The agents decide what is traced and how: the reader's own choices would be silently
/// ignored, so they are refused; so is one agent given twice.
fn refuse_what_agents_decide(args: &FollowArgs) -> anyhow::Result<()> {
    let ignored = [
        ("--node", args.node.is_some()),
        ("--port", args.port.is_some()),
        ("--proto", args.proto.is_some()),
        ("--kernel-stats", args.kernel_stats),
        ("--kernel-log", args.kernel_log),
        ("--no-route-hook", args.no_route_hook),
        ("--no-nat-hook", args.no_nat_hook),
        ("--sample", args.sample.shift() > 0),
        ("--cluster-file", args.cluster_file.is_some()),
    ];
    let given: Vec<&str> = ignored
        .iter()
        .filter(|(_, on)| *on)
        .map(|(f, _)| *f)
        .collect();
    if !given.is_empty() {
        return Err(crate::exit::Usage(format!(
            "{} with --agent: the agents decide what they trace; give it to each `tracer agent`",
            given.join(", ")
        ))
        .into());
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(twice) = args.agents.iter().find(|a| !seen.insert(**a)) {
        return Err(crate::exit::Usage(format!("--agent {twice} is given twice")).into());
    }
    Ok(())
}

pub fn follow(args: &FollowArgs) -> anyhow::Result<i32> {
    refuse_what_agents_decide(args)?;
    // A refused --record file is said before any agent is reached (a reader that goes
    // away ends its agents).
    if let Some(path) = &args.record {
        crate::files::check(path, &command::recording_rules(args.force))?;
    }
    super::install_stop_handlers();
    let mut streams = Vec::new();
    for address in &args.agents {
        let stream = TcpStream::connect_timeout(address, CONNECT_TIMEOUT)
            .map_err(|e| anyhow::anyhow!("cannot reach the agent at {address}: {e}"))?;
        prepare(&stream)?;
        streams.push(LiveStream::tcp(format!("agent {address}"), stream)?);
    }
    let what = args
        .agents
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    read_agents(args, streams, &format!("agents {what}"), Vec::new())
}

/// `follow --agents`: the agent Pods started on the nodes involved, read through their
/// port-forwards, and deleted at the end ([`super::pods`]).
pub fn follow_through_pods(args: &FollowArgs) -> anyhow::Result<i32> {
    if let Some(path) = &args.record {
        crate::files::check(path, &command::recording_rules(args.force))?;
    }
    super::install_stop_handlers();
    let source = ClusterSource::Api {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
    };
    let cluster = ClusterHandle::start(&source, args.api_timeout)?;
    let model = cluster.snapshot();
    let plan = command::plan_of(args, &model)?;
    let nodes = pods::involved_nodes(&model, &plan.from, &plan.to)?;
    eprintln!(
        "following {} → {}\n  names from {}\n  starting an agent Pod on node{} {}",
        plan::describe(&plan.from),
        plan::describe(&plan.to),
        cluster.describe(),
        if nodes.len() == 1 { "" } else { "s" },
        nodes.join(", ")
    );
    let pods::Started {
        pods: agent_pods,
        reached,
        lost,
        stopped,
    } = AgentPods::start(args, &nodes, &stop_requested)?;
    if stopped {
        eprintln!("  stopped while the agents were starting: their Pods are deleted");
        return Ok(crate::exit::SUCCESS);
    }
    if reached.is_empty() {
        let why: Vec<String> = lost.iter().map(|(n, why)| format!("{n}: {why}")).collect();
        return Err(pods::CannotStart(format!(
            "no node's agent could be reached ({})",
            why.join("; ")
        ))
        .into());
    }
    // In node order, whichever answered first: the first is the clocks' reference.
    let mut reached = reached;
    reached.sort_by(|a, b| a.node.cmp(&b.node));
    let names: Vec<String> = reached.iter().map(|r| r.node.clone()).collect();
    let streams = reached
        .into_iter()
        .map(|r| {
            let name = format!("node {} (Pod {})", r.node, r.pod);
            prepare(&r.stream)?;
            Ok(match r.reopen {
                Some(reopen) => pods::resume::resuming(name, r.stream, reopen)?,
                None => LiveStream::tcp(name, r.stream)?,
            })
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let lost = lost
        .into_iter()
        .map(|(node, why)| {
            format!("node {node} not followed: its agent could not be reached ({why})")
        })
        .collect();
    let code = read_agents(
        args,
        streams,
        &format!("agent Pods on {}", names.join(", ")),
        lost,
    );
    // Deleted here, and also when reading failed.
    drop(agent_pods);
    code
}

/// Reads the agents' streams, stitched, into the chosen output until Ctrl-C,
/// `--duration`, `--count` or every agent's end.
/// An agent streams once every hook is attached, which takes a while on a slow machine:
/// its first read may take [`ATTACHING`]; after its start, [`SILENCE`].
fn prepare(stream: &TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(ATTACHING))?;
    stream.set_nodelay(true)
}

fn read_agents(
    args: &FollowArgs,
    streams: Vec<LiveStream>,
    source: &str,
    lost: Vec<String>,
) -> anyhow::Result<i32> {
    let merged = Merged::from_streams(streams, SILENCE)?;
    let count = merged.names().len();
    let following = merged
        .meta()
        .map(|m| m.session.following)
        .unwrap_or_default();
    eprintln!(
        "following {following}\n  watching through {count} agent{} ({}); Ctrl-C to stop",
        if count == 1 { "" } else { "s" },
        merged.names().join(", ")
    );
    let output = args
        .output
        .unwrap_or(if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            Output::Tui
        } else {
            Output::Text
        });
    let recorder = match &args.record {
        Some(path) => Some(command::start_recording(path, args.force)?),
        None => None,
    };
    let mut live = Live {
        merged,
        recorder,
        until: args.duration.map(|d| Instant::now() + d),
        lost,
    };
    let mut failed = false;
    let header = tui::Header {
        following,
        mode: tui::Mode::Live,
        recording: args.record.clone(),
        source: source.to_owned(),
    };
    command::show(output, args.flows, header, |sink| {
        let summary = run_until(&mut live, source, sink, args.count)?;
        failed = summary.failed;
        Ok(())
    })?;
    if let Some(recorder) = live.recorder.take() {
        let report = recorder.finish();
        if let Some(error) = report.error {
            eprintln!("tracer: the recording failed: {error}");
            failed = true;
        }
    }
    Ok(if failed {
        crate::exit::FAILURE
    } else {
        crate::exit::SUCCESS
    })
}

/// The agents' stitched streams until Ctrl-C or `--duration`, each input also recorded.
struct Live {
    merged: Merged,
    recorder: Option<Recorder>,
    until: Option<Instant>,
    /// Nodes whose agent was never reached, said with the summary.
    lost: Vec<String>,
}

impl Inputs for Live {
    fn next_input(&mut self) -> Option<Input> {
        if stop_requested() || self.until.is_some_and(|t| Instant::now() >= t) {
            // What the agents sent so far is still told.
            self.merged.stop_reading();
        }
        let input = self.merged.next_input()?;
        if let Some(recorder) = &mut self.recorder {
            recorder.record(&input);
        }
        Some(input)
    }

    fn read_counters(&self) -> ReadCounters {
        self.merged.read_counters()
    }

    fn notes(&self) -> Vec<String> {
        let mut notes = self.lost.clone();
        notes.extend(self.merged.notes());
        notes
    }

    fn read_anything(&self) -> bool {
        self.merged.read_anything()
    }

    fn complete(&self, summary: &mut Summary) {
        self.merged.complete(summary);
    }
}
