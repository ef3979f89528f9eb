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
    after_help = "Exit status: 0 success; 1 error; 2 invalid usage (a malformed or meaningless \
                  argument, or an output file refused: it exists, is a symlink, or is the \
                  input); 3 missing privileges; 4 this kernel cannot support the command."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Follow the packets between two endpoints, live (needs root).
    Follow(FollowArgs),
    /// The node-local half of a follow across nodes: attach on this node (or the lab node
    /// `--node`) and record what it sees to `--record FILE`, for `tracer replay` to stitch
    /// with the other nodes' recordings, or stream it to `tracer follow --agent` with
    /// `--listen ADDR` (needs root).
    Agent(AgentArgs),
    /// A node's standing agent, as `tracer deploy`'s DaemonSet runs it: serves one reader
    /// at a time (`tracer follow --agents`), each saying what to follow, and streams that
    /// node's session to it (needs root).
    NodeAgent(NodeAgentArgs),
    /// Print the manifest of a DaemonSet that keeps a node agent on every node, which
    /// `tracer follow --agents` then uses instead of starting agent Pods
    /// (`tracer deploy | kubectl apply -f -`; the RBAC is in deploy/rbac.yaml).
    Deploy(DeployArgs),
    /// Open a recording in the same UI, or print its journeys (no privileges needed).
    Replay(ReplayArgs),
    /// Export a recording as pcapng, one packet per observed hop, for Wireshark/tshark.
    Export(ExportArgs),
    /// The built-in lab: the seed's 3-node cluster in network namespaces on this machine.
    Lab(tracer_lab::LabArgs),
    /// What this kernel and this user can do, found out by trying; exits 0 if `follow` can work.
    Doctor(DoctorArgs),
    /// Remove the netlink filters (and clsact qdiscs) that killed `follow` runs left on this
    /// machine; never a foreign one, never a running tracer's (needs root).
    Cleanup(CleanupArgs),
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
    #[arg(short = 'n', long, default_value = "default", value_parser = parse_namespace)]
    pub namespace: String,
    /// Only packets to or from this port (1-65535).
    #[arg(long, value_parser = parse_port)]
    pub port: Option<u16>,
    /// Only this protocol.
    #[arg(long, value_enum)]
    pub proto: Option<Protocol>,
    /// Also write the session to this file (replay it with `tracer replay`). Created mode
    /// 0600; an existing file is refused unless --force, a symlink always.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Replace an existing --record file (a new file is written beside it and renamed over).
    #[arg(long, requires = "record")]
    pub force: bool,
    /// How to show journeys; default: tui on a terminal, text otherwise.
    #[arg(long, short = 'o', value_enum)]
    pub output: Option<Output>,
    /// Show each flow (protocol, direction, FROM, TO, the server's port) and its distinct
    /// paths, with packet counts, first and last seen, and the spread of durations: at the
    /// end with `--output text`, `json` and `summary`; the terminal UI starts in its flow
    /// view (`f`).
    #[arg(long)]
    pub flows: bool,
    /// Stop after this long (e.g. 500ms, 30s, 5m, 1h; more than zero, at most a year).
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many journeys (1 or more).
    #[arg(long, value_parser = parse_count)]
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
    /// Show what the kernel programs report about packets they could not handle (frames
    /// their parser could not read, …) as notices, recorded with the session. Off, the
    /// verifier removes those reports: they cost nothing.
    #[arg(long)]
    pub kernel_log: bool,
    /// Name things from this file (`kubectl get pods,svc,endpointslices,nodes -A -o json`)
    /// instead of the Kubernetes API.
    #[arg(long, value_name = "FILE")]
    pub cluster_file: Option<PathBuf>,
    /// How long to wait for the Kubernetes API's first list of Pods, Services, endpoints and
    /// nodes before giving up (a very large cluster, or an emulated VM, may need longer).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub api_timeout: Duration,
    /// Look only at the host's network namespace and the named ones whose name starts with
    /// PREFIX (`/run/netns/PREFIX*`), not at every namespace on the machine: for hosts that
    /// run several isolated environments with overlapping addresses.
    #[arg(long, value_name = "PREFIX", value_parser = parse_netns_prefix)]
    pub netns_prefix: Option<String>,
    /// Trace only node NODE's namespaces (its own and its Pods'), on a machine that holds
    /// several nodes, as the lab does: what that node's agent would see.
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
    /// Follow through node agents instead of this machine's kernel: connect to each
    /// `tracer agent … --listen ADDR` (one per node the packets cross) and stitch their
    /// streams into one session, as `tracer replay` stitches per-node recordings. Needs no
    /// privileges here.
    #[arg(long = "agent", value_name = "ADDR")]
    pub agents: Vec<std::net::SocketAddr>,
    /// Follow across nodes through the Kubernetes API: start a short-lived agent Pod on
    /// each node the packets can cross (FROM's, TO's, a Service's endpoints' nodes),
    /// reach each through `pods/portforward`, stitch their streams, and delete the Pods
    /// at the end. Needs the RBAC in `deploy/rbac.yaml`; no privileges here.
    #[arg(long = "agents", conflicts_with_all = ["agents", "node", "cluster_file"])]
    pub agent_pods: bool,
    /// Follow only what this machine's kernel sees. Without it, `follow` goes through
    /// agent Pods (as `--agents`) when the packets can cross nodes this machine does not
    /// hold, and stays here when it cannot start them.
    #[arg(long, conflicts_with_all = ["agents", "agent_pods"])]
    pub local: bool,
    /// The agent Pods' image (when `follow` goes through agent Pods).
    #[arg(long, value_name = "IMAGE", default_value = crate::follow::pods::DEFAULT_IMAGE)]
    pub agent_image: String,
    /// The namespace the agent Pods run in.
    #[arg(long, value_name = "NAMESPACE", default_value = "kube-system")]
    pub agent_namespace: String,
    /// The agent Pods end on their own after this long, should this process be killed
    /// before it deletes them (their `activeDeadlineSeconds`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1h")]
    pub agent_deadline: Duration,
    /// How long an agent Pod goes on when its port-forward breaks, for this process to
    /// open it again and resume its stream where it broke (an API server that restarts);
    /// also how long an agent of a killed `follow` lingers.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub agent_resume_within: Duration,
    /// How to attach the TC programs: `auto` uses TCX links where this kernel has them
    /// (6.6+) and clsact qdiscs with netlink filters otherwise; `tcx` or `netlink` force one.
    #[arg(long, value_enum, default_value_t = crate::follow::attach::AttachChoice::Auto)]
    pub attach: crate::follow::attach::AttachChoice,
    /// Which drop hook to use: `auto` reads the kernel's drop reason where its `kfree_skb`
    /// tracepoint has one (Linux 5.17+) and falls back to the packet alone otherwise;
    /// `no-reason` forces the fallback (drops then say "reason unknown on this kernel").
    #[arg(long, value_enum, default_value_t = crate::probes::kfree_skb::DropHookChoice::Auto)]
    pub drop_hook: crate::probes::kfree_skb::DropHookChoice,
    /// Do not observe routing decisions (the `fib_table_lookup` tracepoint): infer each
    /// from its node's routing table, as on kernels without the tracepoint.
    #[arg(long)]
    pub no_route_hook: bool,
    /// Do not observe NAT rewrites (`nf_nat_manip_pkt` by fentry or kprobe): infer each
    /// from the headers before and after it, as on kernels without fentry and kprobes.
    #[arg(long)]
    pub no_nat_hook: bool,
    /// Trace about one packet in N of a busy flow hop by hop and count the rest at every
    /// hook they cross (N a power of two, 1 to 1048576; 1: trace every packet). TCP
    /// openings, ends and resets, every ICMP packet and every drop are always traced; the
    /// flows (`--flows`) say how many packets each path carried besides those traced.
    #[arg(long, value_name = "N", default_value = "1", value_parser = parse_sample)]
    pub sample: Sample,
}

/// `--sample N`: one packet in `2^shift` is traced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample(u8);

impl Sample {
    pub fn shift(self) -> u8 {
        self.0
    }

    /// N, as the user wrote it.
    pub fn one_in(self) -> u64 {
        1 << self.0
    }
}

fn parse_sample(text: &str) -> Result<Sample, String> {
    let n: u64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number (one packet in N: 1, 2, 4, … 1048576)"))?;
    let max = 1u64 << tracer_common::sample::MAX_SHIFT;
    if !n.is_power_of_two() || n > max {
        return Err(format!(
            "{n} is not a power of two from 1 to {max} (one packet in N is traced)"
        ));
    }
    Ok(Sample(n.trailing_zeros() as u8))
}

/// `tracer agent`: `follow`'s arguments; it records (`--record` or `--listen` is required)
/// and shows no journeys (`--output`, `--flows`, `--count` and `--agent` are refused).
#[derive(Debug, Args)]
pub struct AgentArgs {
    #[command(flatten)]
    pub follow: FollowArgs,
    /// Stream what this node sees to one `tracer follow --agent ADDR` instead of a file:
    /// listen on ADDR (e.g. 127.0.0.1:7400), and once every hook is attached, serve the
    /// first reader that connects, until it goes away or Ctrl-C.
    #[arg(long, value_name = "ADDR", conflicts_with = "record")]
    pub listen: Option<std::net::SocketAddr>,
    /// With --listen: end, with status 0, when no reader has come this long after every
    /// hook was attached (an agent Pod whose `follow` was killed before it connected).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "listen")]
    pub reader_within: Option<Duration>,
    /// With --listen: when the reader's connection breaks, go on and wait this long for it
    /// to come back and resume from the byte it had (`resume N`), the last 64 MiB kept.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "listen")]
    pub resume_within: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct NodeAgentArgs {
    /// Where readers connect (the DaemonSet's Pods: 127.0.0.1:4790, reached through
    /// `pods/portforward`).
    #[arg(long, value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// Trace only node NODE's namespaces, on a machine that holds several (the lab).
    #[arg(long, value_name = "NODE")]
    pub node: Option<String>,
    /// Look only at the host's namespace and those named PREFIX* (as follow's).
    #[arg(long, value_name = "PREFIX", value_parser = parse_netns_prefix)]
    pub netns_prefix: Option<String>,
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The agents' image.
    #[arg(long, value_name = "IMAGE", default_value = crate::follow::pods::DEFAULT_IMAGE)]
    pub agent_image: String,
    /// The namespace the DaemonSet runs in.
    #[arg(long, value_name = "NAMESPACE", default_value = "kube-system")]
    pub agent_namespace: String,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Recordings made with `tracer follow --record` or `tracer agent --record`; several
    /// (one per node) are stitched into one session, their clocks aligned.
    #[arg(required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// How to show journeys; default: tui on a terminal, text otherwise.
    #[arg(long, short = 'o', value_enum)]
    pub output: Option<Output>,
    /// Show each flow (protocol, direction, FROM, TO, the server's port) and its distinct
    /// paths, with packet counts, first and last seen, and the spread of durations: at the
    /// end with `--output text`, `json` and `summary`; the terminal UI starts in its flow
    /// view (`f`).
    #[arg(long)]
    pub flows: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// A recording made with `tracer follow --record`.
    pub file: PathBuf,
    /// Write a pcapng file here (mode 0600), or to stdout with `-` (e.g. `| tshark -r -`).
    /// An existing file is refused unless --force, a symlink and the recording always.
    #[arg(long, value_name = "OUT")]
    pub pcapng: PathBuf,
    /// Replace an existing OUT file (a new file is written beside it and renamed over).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct CleanupArgs {
    /// Look only at the host's network namespace and the named ones whose name starts with
    /// PREFIX (`/run/netns/PREFIX*`), as `follow --netns-prefix` does.
    #[arg(long, value_name = "PREFIX", value_parser = parse_netns_prefix)]
    pub netns_prefix: Option<String>,
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

/// The longest `--duration`: longer is surely a typo (leave it out to follow until stopped).
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// `500ms`, `30s`, `5m`, `1h`, or plain seconds; more than zero, at most [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.starts_with('-') {
        return Err(format!(
            "`{text}` is negative: give how long to follow, e.g. 30s"
        ));
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    // Digits and dots only: no sign, exponent, NaN or infinity gets this far.
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
    if seconds > MAX_DURATION.as_secs_f64() {
        return Err(format!(
            "`{text}` is more than a year; leave --duration out to follow until stopped"
        ));
    }
    match Duration::try_from_secs_f64(seconds) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        _ => Err(format!(
            "`{text}` would stop before anything is seen: give a duration longer than zero, or \
             leave --duration out to follow until stopped"
        )),
    }
}

/// A journey count: 1 or more.
pub fn parse_count(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(0) => Err(
            "0 would stop before the first journey: give 1 or more, or leave --count out"
                .to_owned(),
        ),
        Ok(count) => Ok(count),
        Err(_) => Err(format!("`{text}` is not a number of journeys (1 or more)")),
    }
}

/// A TCP/UDP port: 1-65535 (port 0 is never on the wire).
pub fn parse_port(text: &str) -> Result<u16, String> {
    match text.trim().parse::<u16>() {
        Ok(0) => Err(
            "port 0 is never on the wire: give a port from 1 to 65535, or leave --port out for \
             every port"
                .to_owned(),
        ),
        Ok(port) => Ok(port),
        Err(_) => Err(format!("`{text}` is not a port (1 to 65535)")),
    }
}

/// A namespace name: not empty.
pub fn parse_namespace(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("the namespace is empty: give one, e.g. -n default".to_owned());
    }
    Ok(text.to_owned())
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
    fn sampling_takes_powers_of_two_and_says_why_not() {
        assert_eq!(parse_sample("1").unwrap().shift(), 0);
        assert_eq!(parse_sample("64").unwrap().shift(), 6);
        assert_eq!(parse_sample("64").unwrap().one_in(), 64);
        assert_eq!(parse_sample("1048576").unwrap().shift(), 20);
        for (text, reason) in [
            ("0", "not a power of two"),
            ("100", "not a power of two"),
            ("2097152", "not a power of two"),
            ("many", "not a number"),
        ] {
            let error = parse_sample(text).unwrap_err();
            assert!(error.contains(reason), "{text}: {error}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("8760h").unwrap(), MAX_DURATION);
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn meaningless_durations_are_refused_with_the_reason() {
        for (text, reason) in [
            ("0", "longer than zero"),
            ("0s", "longer than zero"),
            ("0.0000000001", "longer than zero"),
            ("-5s", "negative"),
            ("NaN", "not a duration"),
            ("inf", "not a duration"),
            ("1e9s", "unknown unit"),
            ("8761h", "more than a year"),
            ("99999999999999999999999h", "more than a year"),
        ] {
            let err = parse_duration(text).expect_err(text);
            assert!(err.contains(reason), "{text}: {err}");
        }
    }

    #[test]
    fn counts_ports_and_namespaces_must_mean_something() {
        assert_eq!(parse_count("3"), Ok(3));
        assert!(parse_count("0").unwrap_err().contains("1 or more"));
        assert!(parse_count("-1").unwrap_err().contains("not a number"));
        assert_eq!(parse_port("80"), Ok(80));
        assert_eq!(parse_port("65535"), Ok(65535));
        assert!(parse_port("0").unwrap_err().contains("1 to 65535"));
        assert!(parse_port("65536").unwrap_err().contains("not a port"));
        assert_eq!(parse_namespace("kube-system").as_deref(), Ok("kube-system"));
        assert!(parse_namespace(" ").is_err());
        for args in [
            ["tracer", "follow", "a", "b", "--count", "0"],
            ["tracer", "follow", "a", "b", "--port", "0"],
            ["tracer", "follow", "a", "b", "--duration", "0"],
        ] {
            let err = Cli::try_parse_from(args).expect_err("refused");
            assert_eq!(err.exit_code(), crate::exit::USAGE, "{args:?}");
        }
    }

    #[test]
    fn force_needs_something_to_replace() {
        assert!(Cli::try_parse_from(["tracer", "follow", "a", "b", "--force"]).is_err());
        let cli = Cli::try_parse_from(["tracer", "follow", "a", "b", "--record", "r", "--force"])
            .unwrap();
        let Command::Follow(args) = cli.command else {
            panic!("not follow")
        };
        assert!(args.force);
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
