use std::{io::Write as _, process::ExitCode};

use clap::{CommandFactory as _, Parser as _};
use tracer::{
    cli::{Cli, Command, DoctorOutput},
    doctor, exit,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let status = match run(cli) {
        Ok(status) => status,
        // A closed pipe (`tracer … | head`) is not an error worth a message.
        Err(err) if exit::is_broken_pipe(&err) => exit::SUCCESS,
        Err(err) => {
            eprintln!("tracer: {}", exit::message(&err));
            exit::status_of(&err)
        }
    };
    ExitCode::from(u8::try_from(status).unwrap_or(1))
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Doctor(args) => {
            let report = doctor::run();
            let mut stdout = std::io::stdout().lock();
            let text = match args.output {
                DoctorOutput::Text => doctor::render_text(&report),
                // Rendered first, so that a closed pipe is an io::Error, not a serde one.
                DoctorOutput::Json => serde_json::to_string_pretty(&report)? + "\n",
            };
            stdout.write_all(text.as_bytes())?;
            Ok(if report.follow_works {
                exit::SUCCESS
            } else if report.capabilities.iter().any(|c| !c.present) {
                exit::NO_PRIVILEGE
            } else {
                exit::KERNEL_UNSUPPORTED
            })
        }
        Command::Completions { shell } => {
            // Generated into memory: clap_complete panics on a write error (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "tracer", &mut script);
            std::io::stdout().write_all(&script)?;
            Ok(exit::SUCCESS)
        }
        Command::Follow(args) => tracer::follow::command::follow(args),
        Command::Agent(args) => tracer::follow::command::agent(args),
        Command::NodeAgent(args) => tracer::follow::node_agent::serve(&args),
        Command::Deploy(args) => {
            let manifest =
                tracer::follow::pods::daemon_set(&args.agent_image, &args.agent_namespace);
            println!("{}", serde_json::to_string_pretty(&manifest)?);
            Ok(exit::SUCCESS)
        }
        Command::Cleanup(args) => cleanup(args),
        Command::Replay(args) => replay(&args),
        Command::Export(args) => {
            let (packets, summary) = tracer::export::export(
                &args.file,
                &args.pcapng,
                tracer::files::Overwrite::from_force(args.force),
            )?;
            eprintln!(
                "wrote {packets} packets (one per observed hop) to {}; {}",
                tracer::files::shown(&args.pcapng),
                summary.text()
            );
            Ok(if summary.failed {
                exit::FAILURE
            } else {
                exit::SUCCESS
            })
        }
        Command::Lab(args) => run_lab(args),
    }
}

/// `tracer cleanup`: every namespace, every interface; see `follow::cleanup`.
fn cleanup(args: tracer::cli::CleanupArgs) -> anyhow::Result<i32> {
    use tracer::{
        follow::{check_privileges, cleanup, runs},
        topology::NamespaceScope,
    };
    check_privileges()?;
    let swept = cleanup::everywhere(
        std::path::Path::new(runs::RUN_DIR),
        &NamespaceScope::from_prefix(args.netns_prefix),
    )?;
    for filter in &swept.filters {
        println!("removed filter {filter}");
    }
    for qdisc in &swept.qdiscs {
        println!("removed clsact qdisc {qdisc}");
    }
    for problem in &swept.problems {
        eprintln!("tracer: {problem}");
    }
    eprintln!("{}", swept.describe());
    Ok(if swept.problems.is_empty() {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}

fn replay(args: &tracer::cli::ReplayArgs) -> anyhow::Result<i32> {
    use std::io::IsTerminal as _;

    use tracer::{
        cli::Output,
        output::{Sink, SummarySink, json::JsonSink, text::TextSink, ui::UiSink},
        tui,
    };

    let output = args.output.unwrap_or(if std::io::stdout().is_terminal() {
        Output::Tui
    } else {
        Output::Text
    });
    // Refuse a file that is not a recording, or recordings that do not stitch, before any
    // screen is drawn.
    let following = if let [file] = args.files.as_slice() {
        tracer::replay::Recording::open(file)?;
        tracer::replay::following(file).unwrap_or_default()
    } else {
        let merged = tracer::replay::merge::Merged::open(&args.files)?;
        merged
            .meta()
            .map(|m| m.session.following)
            .unwrap_or_default()
    };
    let run = |sink: &mut dyn Sink| -> anyhow::Result<bool> {
        let replayed = tracer::replay::replay_all(&args.files, sink)?;
        Ok(replayed.summary.failed)
    };
    let failed = match output {
        Output::Json => run(&mut JsonSink::new(std::io::stdout().lock()).with_flows(args.flows))?,
        Output::Text => run(&mut TextSink::new(std::io::stdout().lock()).with_flows(args.flows))?,
        Output::Summary => run(&mut SummarySink::with_flows(args.flows))?,
        Output::Tui => {
            let header = tui::Header {
                following,
                mode: tui::Mode::Replay,
                recording: None,
                source: format!(
                    "recording {}",
                    args.files
                        .iter()
                        .map(|f| f.display().to_string())
                        .collect::<Vec<_>>()
                        .join(" + ")
                ),
            };
            let (tx, rx) = std::sync::mpsc::sync_channel(1024);
            std::thread::scope(|scope| -> anyhow::Result<bool> {
                let reader = scope.spawn(move || run(&mut UiSink::replay(tx)));
                let first = if args.flows {
                    tui::state::View::Flows
                } else {
                    tui::state::View::Journeys
                };
                tui::run_with_retention(header, rx, tui::state::DEFAULT_RETENTION, first)?;
                // The reader stops at its next send once the UI has gone.
                Ok(matches!(reader.join(), Ok(Ok(true))))
            })?
        }
    };
    Ok(if failed { exit::FAILURE } else { exit::SUCCESS })
}

/// `tracer lab …`: the lab crate's own command line; its "needs root", "invalid usage" and
/// "this kernel lacks it" become ours.
fn run_lab(args: tracer_lab::LabArgs) -> anyhow::Result<i32> {
    tracer_lab::run(args).map_err(|err| match err.downcast::<tracer_lab::NeedsRoot>() {
        Ok(needs_root) => exit::MissingPrivilege(needs_root.to_string()).into(),
        Err(other) => match other.downcast::<tracer_lab::BadUsage>() {
            Ok(usage) => exit::Usage(usage.0).into(),
            Err(other) => match other.downcast::<tracer_lab::KernelLacks>() {
                Ok(lacks) => exit::KernelUnsupported(lacks.0).into(),
                Err(other) => other,
            },
        },
    })
}
