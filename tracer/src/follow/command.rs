//! The `tracer follow` command: from arguments to a running session and its summary.

use std::{io::IsTerminal as _, path::Path};

use crate::{
    cli::{FollowArgs, Output},
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
const LIVE_RETENTION: usize = 10_000;

pub fn follow(args: FollowArgs) -> anyhow::Result<i32> {
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
    let protocol = args.proto.map(|p| match p {
        crate::cli::Protocol::Tcp => IpProto::Tcp,
        crate::cli::Protocol::Udp => IpProto::Udp,
        crate::cli::Protocol::Icmp => IpProto::Icmp,
    });
    let plan = plan::plan(
        &model,
        plan::Asked {
            from: &args.from,
            to: &args.to,
            namespace: &args.namespace,
            filter: JourneyFilter {
                port: args.port,
                protocol,
            },
            namespaces: NamespaceScope::from_prefix(args.netns_prefix.clone()),
        },
    )?;
    // Said as soon as the arguments are resolved; discovery and attaching follow.
    eprintln!(
        "following {} → {}\n  names from {}",
        plan::describe(&plan.from),
        plan::describe(&plan.to),
        cluster.describe()
    );
    let topology = follow::discover_topology(&model, &plan.namespaces);
    let attachments = follow::attachments(&topology, &plan.filter);
    for warning in follow::visibility_warnings(&topology, &plan) {
        eprintln!("  note: {warning}");
    }
    let mut kernel = follow::Kernel::attach(
        &plan.filter,
        &attachments,
        args.attach,
        args.kernel_log,
        args.drop_hook,
        !args.no_route_hook,
        !args.no_nat_hook,
    )?;
    let nodes: std::collections::BTreeSet<_> = topology
        .hosts
        .iter()
        .filter_map(|h| match &h.role {
            crate::topology::HostRole::Node { name } => Some(name.clone()),
            _ => None,
        })
        .collect();
    eprintln!(
        "  watching {} interfaces ({}) on {} ({}); Ctrl-C to stop",
        kernel.attached.len(),
        kernel.mode.name(),
        if nodes.is_empty() {
            "this host".to_owned()
        } else {
            nodes.into_iter().collect::<Vec<_>>().join(", ")
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
    };
    let stats = if args.kernel_stats {
        Some(follow::enable_kernel_stats()?)
    } else {
        None
    };
    let followed = Session {
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
    };
    let mut recorder = match &args.record {
        Some(path) => Some(start_recording(path, args.force)?),
        None => None,
    };
    let mut failed = false;
    let mut session = |sink: &mut dyn Sink| -> anyhow::Result<()> {
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
    match output {
        Output::Json => {
            session(&mut JsonSink::new(std::io::stdout().lock()).with_flows(args.flows))?;
        }
        Output::Text => {
            session(&mut TextSink::new(std::io::stdout().lock()).with_flows(args.flows))?;
        }
        Output::Summary => session(&mut SummarySink::with_flows(args.flows))?,
        Output::Tui => {
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
            let (tx, rx) = std::sync::mpsc::sync_channel(65_536);
            // The session runs beside the UI; quitting the UI stops it like Ctrl-C.
            std::thread::scope(|scope| -> anyhow::Result<()> {
                let worker = scope.spawn(move || session(&mut UiSink::live(tx)));
                let first = if args.flows {
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
            })?;
        }
    }
    Ok(if failed {
        crate::exit::FAILURE
    } else {
        crate::exit::SUCCESS
    })
}

/// The rules the --record file is created by (also checked early, with these).
fn recording_rules(force: bool) -> files::Rules<'static> {
    files::Rules {
        what: "recording",
        overwrite: Overwrite::from_force(force),
        streams: files::Streams::Refused,
        input: None,
    }
}

/// Creates the recording file by the rules of [`crate::files`] (private: it names a
/// cluster's insides; never through a symlink; an existing file only with --force) and
/// starts the recorder.
fn start_recording(path: &Path, force: bool) -> anyhow::Result<Recorder> {
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
