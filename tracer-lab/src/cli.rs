//! `tracer lab …` as clap sees it, and its dispatch. The `tracer` binary embeds
//! [`LabArgs`] as its `lab` subcommand and hands it to [`run`]; nothing else of the lab is
//! its business.
//!
//! `lab up` starts the daemon by running the same executable again as `<exe> lab daemon`,
//! so the binary that embeds these arguments must do so under the name `lab`.

use clap::{Args, Subcommand};

use crate::state::State;

#[derive(Debug, Args)]
pub struct LabArgs {
    #[command(subcommand)]
    pub command: LabCommand,
}

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Build the lab (idempotent; switches scenario and proxy mode in place).
    Up {
        #[arg(long, default_value = "healthy")]
        scenario: String,
        /// How kube-proxy implements Services: iptables, nftables or ipvs.
        #[arg(long, default_value = "iptables")]
        proxy_mode: String,
        /// Set nodes' clocks apart, as real machines' are: `cpu1=+40ms,gpu1=-3ms` (from
        /// -10s to +10s). A node's agent (`tracer agent --node`) then records as a machine
        /// of its own whose wall clock is off by that much. Without it, all agree.
        #[arg(long, value_name = "NODE=OFFSET,…")]
        clock_offset: Option<String>,
    },
    /// Remove everything the lab created.
    Down,
    /// Show what is up.
    Status,
    /// List the scenarios, one line each.
    Scenarios,
    /// Run a command inside a lab Pod's (or node's) network namespace, like `kubectl exec`.
    Exec {
        /// A Pod name (or unique prefix) or a node name (cpu1, cpu2, gpu1).
        pod: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Replace a Deployment's Pod as its ReplicaSet would: the old Pod (namespace, veth,
    /// route, endpoint) goes, a new one with a new name comes up on the same node, with a
    /// new address from the node's block; kube-proxy's rules and the API follow.
    ReplacePod {
        /// A Pod name (or unique prefix) of nginx-test or webapp.
        pod: String,
        /// Give the new Pod the old Pod's address (the old Pod goes first).
        #[arg(long)]
        reuse_ip: bool,
    },
    /// The lab's background process (HTTP servers, Kubernetes API); started by `up`.
    #[command(hide = true)]
    Daemon,
}

/// Runs one `lab` command; returns the process's exit status (`exec`: the command's).
/// A missing privilege is a [`NeedsRoot`](crate::NeedsRoot) error and an unusable argument
/// a [`BadUsage`](crate::BadUsage) one, for the caller's exit status.
pub fn run(args: LabArgs) -> anyhow::Result<i32> {
    use std::io::Write as _;
    match args.command {
        LabCommand::Up {
            scenario,
            proxy_mode,
            clock_offset,
        } => crate::up(
            crate::parse_scenario(&scenario)?,
            crate::parse_proxy_mode(&proxy_mode)?,
            &crate::parse_clock_offsets(clock_offset.as_deref().unwrap_or(""))?,
        )?,
        LabCommand::Down => crate::down()?,
        // Written, not print!ed: print! panics when the pipe is closed.
        LabCommand::Status => std::io::stdout().write_all(crate::status()?.as_bytes())?,
        LabCommand::Scenarios => std::io::stdout().write_all(crate::scenarios().as_bytes())?,
        LabCommand::Exec { pod, command } => return crate::exec(&pod, &command),
        LabCommand::ReplacePod { pod, reuse_ip } => crate::replace_pod(&pod, reuse_ip)?,
        LabCommand::Daemon => crate::daemon::run(&State::open(&State::default_dir()))?,
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory as _, Parser};

    use super::*;

    /// The lab's arguments as a binary of their own, as `tracer lab` embeds them.
    #[derive(Debug, Parser)]
    #[command(name = "lab")]
    struct Lab {
        #[command(flatten)]
        args: LabArgs,
    }

    #[test]
    fn the_lab_cli_is_well_formed() {
        Lab::command().debug_assert();
        let lab = Lab::try_parse_from(["lab", "exec", "nettest", "--", "curl", "-s", "x"]).unwrap();
        let LabCommand::Exec { pod, command } = lab.args.command else {
            panic!("not exec")
        };
        assert_eq!((pod.as_str(), command.len()), ("nettest", 3));
        let lab = Lab::try_parse_from(["lab", "up", "--proxy-mode", "nftables"]).unwrap();
        let LabCommand::Up {
            scenario,
            proxy_mode,
            clock_offset: None,
        } = lab.args.command
        else {
            panic!("not up")
        };
        assert_eq!(
            (scenario.as_str(), proxy_mode.as_str()),
            ("healthy", "nftables")
        );
        let lab = Lab::try_parse_from(["lab", "replace-pod", "webapp", "--reuse-ip"]).unwrap();
        assert!(matches!(
            lab.args.command,
            LabCommand::ReplacePod { reuse_ip: true, .. }
        ));
    }
}
