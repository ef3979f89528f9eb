use std::{io::Write as _, process::ExitCode};

use clap::{CommandFactory as _, Parser as _};
use tracer::{
    cli::{Cli, Command, DoctorOutput, LabCommand},
    doctor, exit, lab,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let status = match run(cli) {
        Ok(status) => status,
        Err(err) => {
            // A closed pipe (`tracer … | head`) is not an error worth a message.
            if err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                exit::SUCCESS
            } else {
                eprintln!("tracer: {err:#}");
                if err.downcast_ref::<exit::MissingPrivilege>().is_some() {
                    exit::NO_PRIVILEGE
                } else {
                    exit::FAILURE
                }
            }
        }
    };
    ExitCode::from(u8::try_from(status).unwrap_or(1))
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Doctor(args) => {
            let report = doctor::run();
            let mut stdout = std::io::stdout().lock();
            match args.output {
                DoctorOutput::Text => stdout.write_all(doctor::render_text(&report).as_bytes())?,
                DoctorOutput::Json => {
                    serde_json::to_writer_pretty(&mut stdout, &report)?;
                    writeln!(stdout)?;
                }
            }
            Ok(if report.follow_works {
                exit::SUCCESS
            } else if report.capabilities.iter().any(|c| !c.present) {
                exit::NO_PRIVILEGE
            } else {
                exit::KERNEL_UNSUPPORTED
            })
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "tracer", &mut std::io::stdout());
            Ok(exit::SUCCESS)
        }
        Command::Follow(args) => follow(args),
        Command::Replay(_) => not_implemented("replay", 5),
        Command::Export(_) => not_implemented("export", 5),
        Command::Lab(args) => run_lab(args.command),
    }
}

fn follow(args: tracer::cli::FollowArgs) -> anyhow::Result<i32> {
    use std::io::IsTerminal as _;

    use tracer::{
        cli::Output,
        follow::{self, plan},
        k8s::source::{ClusterHandle, ClusterSource},
        output::{Sink, json::JsonSink, text::TextSink},
    };

    let source = match &args.cluster_file {
        Some(path) => ClusterSource::File(path.clone()),
        None => ClusterSource::Api {
            kubeconfig: args.kubeconfig.clone(),
            context: args.context.clone(),
        },
    };
    let cluster = ClusterHandle::start(&source, std::time::Duration::from_secs(10))?;
    let model = cluster.snapshot();
    let protocol = args.proto.map(|p| match p {
        tracer::cli::Protocol::Tcp => "tcp",
        tracer::cli::Protocol::Udp => "udp",
        tracer::cli::Protocol::Icmp => "icmp",
    });
    let plan = plan::plan(
        &model,
        &args.from,
        &args.to,
        &args.namespace,
        args.port,
        protocol,
    )?;
    let topology = follow::discover_topology(&model);
    let attachments = follow::attachments(&topology, &plan.filter);
    eprintln!(
        "following {} → {}\n  names from {}",
        plan::describe(&plan.from),
        plan::describe(&plan.to),
        cluster.describe()
    );
    for warning in follow::visibility_warnings(&topology, &plan) {
        eprintln!("  note: {warning}");
    }
    let mut kernel = follow::Kernel::attach(&plan.filter, &attachments)?;
    let nodes: std::collections::BTreeSet<_> = topology
        .hosts
        .iter()
        .filter_map(|h| match &h.role {
            tracer::topology::HostRole::Node { name } => Some(name.clone()),
            _ => None,
        })
        .collect();
    eprintln!(
        "  watching {} interfaces on {} ({}); Ctrl-C to stop",
        kernel.attached.len(),
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
    let stdout = std::io::stdout().lock();
    let mut sink: Box<dyn Sink> = match output {
        Output::Json => Box::new(JsonSink::new(stdout)),
        // The TUI is being built (issue #5); a terminal gets the text view meanwhile.
        Output::Text | Output::Tui => Box::new(TextSink::new(stdout)),
    };
    let limits = follow::Limits {
        count: args.count,
        duration: args.duration,
    };
    let tally = follow::run(
        &mut kernel,
        &cluster,
        &topology,
        &plan,
        &limits,
        sink.as_mut(),
    )?;
    let loss = kernel.loss();
    sink.finish(&format!(
        "{} journeys: {} delivered, {} dropped, {} incomplete; events lost in the kernel: {} (ring buffer full), {} (unparsable){}",
        tally.total(),
        tally.delivered,
        tally.dropped,
        tally.incomplete,
        loss.ringbuf_full,
        loss.parse_failed,
        if cluster.stale() { "; names may be stale: the Kubernetes API stopped answering" } else { "" }
    ))?;
    Ok(exit::SUCCESS)
}

fn run_lab(command: LabCommand) -> anyhow::Result<i32> {
    match command {
        LabCommand::Up { scenario } => lab::up(lab::parse_scenario(&scenario)?)?,
        LabCommand::Down => lab::down()?,
        LabCommand::Status => print!("{}", lab::status()?),
        LabCommand::Scenarios => print!("{}", lab::scenarios()),
        LabCommand::Exec { pod, command } => return lab::exec(&pod, &command),
        LabCommand::Daemon => {
            let state = lab::state::State::open(&lab::state::State::default_dir());
            lab::daemon::run(&state)?;
        }
    }
    Ok(exit::SUCCESS)
}

fn not_implemented(what: &str, issue: u32) -> anyhow::Result<i32> {
    eprintln!(
        "tracer: `{what}` is not implemented yet (tracked in issue #{issue}); `tracer doctor` works today."
    );
    Ok(exit::NOT_IMPLEMENTED)
}
