//! Runs a `plan`: `ip`/`bridge` batches, sysctls and `iptables-restore`, each inside the
//! lab namespace it belongs to. Nothing here touches the host's own namespace.

use std::{
    io::Write as _,
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

use super::plan::{Batch, Sysctl, Tool};

fn feed(mut command: Command, input: &str, what: &str) -> anyhow::Result<()> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {what}"))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

pub fn batch(batch: &Batch) -> anyhow::Result<()> {
    let program = match batch.tool {
        Tool::Ip => "ip",
        Tool::Bridge => "bridge",
    };
    let mut command = Command::new(program);
    if batch.force {
        command.arg("-force");
    }
    command.args(["-n", &batch.netns, "-batch", "-"]);
    let result = feed(
        command,
        &(batch.lines.join("\n") + "\n"),
        &format!("{program} in {}", batch.netns),
    );
    if batch.force {
        // Cleanups remove what may not exist; their errors are expected.
        return Ok(());
    }
    result
}

/// Creates network namespaces with one `ip -batch`.
pub fn create_namespaces(names: &[String]) -> anyhow::Result<()> {
    if names.is_empty() {
        return Ok(());
    }
    let lines: String = names.iter().map(|n| format!("netns add {n}\n")).collect();
    feed(
        {
            let mut c = Command::new("ip");
            c.args(["-batch", "-"]);
            c
        },
        &lines,
        "ip netns add",
    )
}

pub fn delete_namespace(name: &str) -> anyhow::Result<()> {
    let out = Command::new("ip").args(["netns", "del", name]).output()?;
    if !out.status.success() {
        bail!(
            "ip netns del {name}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Namespaces that exist now (`ip netns list`).
pub fn existing_namespaces() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

pub fn netns_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/run/netns/{name}"))
}

pub fn sysctl(sysctl: &Sysctl) -> anyhow::Result<()> {
    let key = sysctl.key.clone();
    let value = sysctl.value;
    tracer_netns::run_in(&netns_path(&sysctl.netns), move || {
        std::fs::write(format!("/proc/sys/{key}"), value)
    })
    .and_then(|r| r)
    .with_context(|| format!("sysctl {} in {}", sysctl.key, sysctl.netns))
}

pub fn iptables_restore(netns: &str, rules: &str) -> anyhow::Result<()> {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", netns, "iptables-restore"]);
    feed(command, rules, &format!("iptables-restore in {netns}"))
}
