//! The command line, as clap sees it. Parsing only: `main` turns these into plans.

use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "tracer",
    version,
    about = "Follow a Kubernetes Pod's packets hop by hop: veth pairs, Service DNAT, routing, VXLAN, drops.",
    long_about = "Follow a Kubernetes Pod's packets hop by hop with eBPF: which veth pair they \
                  crossed, which kube-proxy rule rewrote them, which route the kernel chose, \
                  where they were encapsulated, and where they arrived or died and why.\n\n\
                  Start with `tracer doctor` to see what this kernel lets tracer observe, and \
                  `tracer lab up` for a built-in 3-node cluster to try it on.",
    after_help = "Exit status: 0 success; 1 error; 2 invalid usage; 3 missing privileges; \
                  4 this kernel cannot support the command."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Follow the packets between two endpoints, live (needs root).
    Follow(FollowArgs),
    /// Open a recording in the same UI, or print its journeys (no privileges needed).
    Replay(ReplayArgs),
    /// Export a recording as pcapng, one packet per observed hop, for Wireshark/tshark.
    Export(ExportArgs),
    /// The built-in lab: the seed's 3-node cluster in network namespaces on this machine.
    Lab(tracer_lab::LabArgs),
    /// What this kernel and this user can do, found out by trying; exits 0 if `follow` can work.
    Doctor(DoctorArgs),
    /// Print a shell completion script to stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Live terminal UI (default when stdout is a terminal).
    Tui,
    /// One compact block per journey, for people (default otherwise).
    Text,
    /// One JSON object per line, per journey (schema in docs/json-schema.md).
    Json,
    /// Only the closing summary. With `follow --record` (and no `--count`), a record-only
    /// session: packets are correlated later, by `tracer replay` — the cheapest capture.
    Summary,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    Tcp,
    Udp,
    Icmp,
}

#[derive(Debug, Args)]
pub struct FollowArgs {
    /// Where packets come from: a Pod (`name` or `ns/name`), a Service (`svc/name`) or an IP.
    pub from: String,
    /// Where they go: a Pod, a Service (`svc/name`) or an IP.
    pub to: String,
    /// Namespace for Pod and Service names without one.
    #[arg(short = 'n', long, default_value = "default")]
    pub namespace: String,
    /// Only packets to or from this port.
    #[arg(long)]
    pub port: Option<u16>,
    /// Only this protocol.
    #[arg(long, value_enum)]
    pub proto: Option<Protocol>,
    /// Also write the session to this file (replay it with `tracer replay`).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// How to show journeys; default: tui on a terminal, text otherwise.
    #[arg(long, short = 'o', value_enum)]
    pub output: Option<Output>,
    /// Stop after this long (e.g. 30s, 5m).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many journeys.
    #[arg(long)]
    pub count: Option<u64>,
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, as kubectl).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use.
    #[arg(long)]
    pub context: Option<String>,
    /// Also measure what each kernel program costs (BPF run-time statistics, enabled for
    /// this run only) and print it with the summary.
    #[arg(long)]
    pub kernel_stats: bool,
    /// Name things from this file (`kubectl get pods,svc,endpointslices,nodes -A -o json`)
    /// instead of the Kubernetes API.
    #[arg(long, value_name = "FILE")]
    pub cluster_file: Option<PathBuf>,
    /// Look only at the host's network namespace and the named ones whose name starts with
    /// PREFIX (`/run/netns/PREFIX*`), not at every namespace on the machine: for hosts that
    /// run several isolated environments with overlapping addresses.
    #[arg(long, value_name = "PREFIX", value_parser = parse_netns_prefix)]
    pub netns_prefix: Option<String>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// A recording made with `tracer follow --record`.
    pub file: PathBuf,
    /// How to show journeys; default: tui on a terminal, text otherwise.
    #[arg(long, short = 'o', value_enum)]
    pub output: Option<Output>,
    /// Playback speed (1 = as recorded).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A recording made with `tracer follow --record`.
    pub file: PathBuf,
    /// Write a pcapng file here.
    #[arg(long, value_name = "OUT")]
    pub pcapng: PathBuf,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[arg(long, short = 'o', value_enum, default_value = "text")]
    pub output: DoctorOutput,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DoctorOutput {
    Text,
    Json,
}

/// A namespace name prefix: not empty (that would be every namespace), not a path.
fn parse_netns_prefix(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("an empty prefix matches every namespace; leave the option out".to_owned());
    }
    if text.contains('/') {
        return Err(format!(
            "`{text}` is a path; give the start of a name in /run/netns"
        ));
    }
    Ok(text.to_owned())
}

/// `500ms`, `30s`, `5m`, `1h`, or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (try 30s, 5m, 1h)"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{text}` (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn follow_takes_pods_services_and_filters() {
        let cli = Cli::try_parse_from([
            "tracer",
            "follow",
            "nettest",
            "svc/nginx-test",
            "-n",
            "default",
            "--port",
            "80",
            "--proto",
            "tcp",
            "--count",
            "3",
            "-o",
            "json",
        ])
        .unwrap();
        let Command::Follow(args) = cli.command else {
            panic!("not follow")
        };
        assert_eq!(args.to, "svc/nginx-test");
        assert_eq!(args.port, Some(80));
        assert_eq!(args.output, Some(Output::Json));
        assert_eq!(args.netns_prefix, None);
    }

    #[test]
    fn netns_prefixes_are_names_not_paths() {
        let follow = |prefix: &str| {
            Cli::try_parse_from(["tracer", "follow", "a", "b", "--netns-prefix", prefix]).map(
                |cli| match cli.command {
                    Command::Follow(args) => args.netns_prefix,
                    _ => panic!("not follow"),
                },
            )
        };
        assert_eq!(follow("tlt42-").unwrap().as_deref(), Some("tlt42-"));
        assert!(follow("").is_err());
        assert!(follow("/run/netns/tlt42-").is_err());
    }
}
