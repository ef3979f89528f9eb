//! Runs a `plan`: `ip`/`bridge` batches, sysctls and kube-proxy's rules, each inside the
//! lab namespace it belongs to. Nothing here touches the host's own namespace.

use std::{
    io::Write as _,
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{Context as _, bail};

use super::{
    kube_proxy::{self, IPSETS, NodeRules},
    plan::{Batch, Sysctl, Tool},
    spec::ProxyMode,
};

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
    feed(
        in_netns(netns, "iptables-restore", &[]),
        rules,
        &format!("iptables-restore in {netns}"),
    )
}

/// `program args…` run inside `netns`.
fn in_netns(netns: &str, program: &str, args: &[&str]) -> Command {
    let mut command = Command::new("ip");
    command.args(["netns", "exec", netns, program]).args(args);
    command
}

/// Whether `tool` is an executable on `$PATH`.
pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(tool).is_file()))
}

/// Whether the kernel's IPVS is loaded (its per-namespace table exists).
pub fn ipvs_loaded() -> bool {
    std::path::Path::new("/proc/net/ip_vs").exists()
}

/// Makes a node's kube-proxy what `rules` says, then removes what another mode left there,
/// so a switch in place leaves nothing of the old mode behind. The new mode is complete
/// before the old one goes (for a moment both may DNAT a new connection, to the same
/// endpoints), so the Services answer throughout:
///
/// - iptables: `iptables-restore` replaces `nat` and `filter` whole;
/// - nftables: one `nft -f` transaction replaces the `kube-proxy` table; iptables keeps only
///   the node's own firewall rule, if any, and its tables are removed when empty;
/// - IPVS: sysctls, `kube-ipvs0` and its addresses, the ipsets, then the virtual servers
///   (only the difference from what the node has: added first, removed after), then
///   iptables;
///
/// and then, for each mode not running: its `kube-proxy` table deleted, or its virtual
/// servers cleared, `kube-ipvs0` deleted and its ipsets destroyed (after iptables, which
/// may still have referred to them).
pub fn kube_proxy(rules: &NodeRules) -> anyhow::Result<()> {
    let netns = rules.netns.as_str();
    if let Some(ipvs) = &rules.ipvs {
        ipvs_apply(netns, ipvs)?;
    }
    if let Some(script) = &rules.nftables {
        feed(
            in_netns(netns, "nft", &["-f", "-"]),
            script,
            &format!("nft in {netns}"),
        )?;
    }
    match &rules.iptables {
        Some(text) => iptables_restore(netns, text)?,
        None => {
            iptables_restore(netns, "*nat\nCOMMIT\n*filter\nCOMMIT\n")?;
            nft_delete_tables(netns, &["ip nat", "ip filter"]);
        }
    }
    if rules.mode != ProxyMode::Nftables {
        nft_delete_tables(netns, &["ip kube-proxy"]);
    }
    if rules.mode != ProxyMode::Ipvs {
        ipvs_remove(netns);
    }
    Ok(())
}

/// Deletes nftables tables if they exist (`add` then `delete` in one transaction). A
/// machine without `nft` has none the lab made.
fn nft_delete_tables(netns: &str, tables: &[&str]) {
    if !on_path("nft") {
        return;
    }
    let script: String = tables
        .iter()
        .map(|t| format!("add table {t}\ndelete table {t}\n"))
        .collect();
    // Best effort: a table that cannot be deleted is reported by the next `nft list`.
    let _ = feed(
        in_netns(netns, "nft", &["-f", "-"]),
        &script,
        "nft delete table",
    );
}

fn ipvs_apply(netns: &str, ipvs: &kube_proxy::Ipvs) -> anyhow::Result<()> {
    for (key, value) in &ipvs.sysctls {
        sysctl(&Sysctl {
            netns: netns.to_owned(),
            key: (*key).to_owned(),
            value,
        })?;
    }
    let mut dummy = Batch {
        netns: netns.to_owned(),
        tool: Tool::Ip,
        lines: Vec::new(),
        force: false,
    };
    let bound = dummy_addresses(netns);
    if bound.is_none() {
        // Down, as kube-proxy leaves it: its addresses are local all the same.
        dummy
            .lines
            .push(format!("link add {} type dummy", kube_proxy::DUMMY));
    }
    let bound = bound.unwrap_or_default();
    for address in &ipvs.dummy_addresses {
        if !bound.contains(address) {
            dummy
                .lines
                .push(format!("addr add {address}/32 dev {}", kube_proxy::DUMMY));
        }
    }
    for address in bound.iter().filter(|a| !ipvs.dummy_addresses.contains(a)) {
        dummy
            .lines
            .push(format!("addr del {address}/32 dev {}", kube_proxy::DUMMY));
    }
    if !dummy.lines.is_empty() {
        batch(&dummy)?;
    }
    feed(
        in_netns(netns, "ipset", &["restore"]),
        &ipvs.ipsets,
        &format!("ipset restore in {netns}"),
    )?;
    let current = ipvs_saved(netns)?;
    let changes = ipvs_changes(&current, &ipvs.services);
    if !changes.is_empty() {
        feed(
            in_netns(netns, "ipvsadm", &["-R"]),
            &(changes.join("\n") + "\n"),
            &format!("ipvsadm -R in {netns}"),
        )?;
    }
    Ok(())
}

/// `kube-ipvs0`'s IPv4 addresses, `None` when it does not exist.
fn dummy_addresses(netns: &str) -> Option<Vec<std::net::Ipv4Addr>> {
    let out = Command::new("ip")
        .args(["-n", netns, "-j", "addr", "show", "dev", kube_proxy::DUMMY])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    Some(
        json.as_array()?
            .iter()
            .flat_map(|link| link["addr_info"].as_array().cloned().unwrap_or_default())
            .filter(|a| a["family"] == "inet")
            .filter_map(|a| a["local"].as_str()?.parse().ok())
            .collect(),
    )
}

/// The node's virtual and real servers as `ipvsadm -Sn` prints them.
fn ipvs_saved(netns: &str) -> anyhow::Result<Vec<String>> {
    let out = in_netns(netns, "ipvsadm", &["-Sn"])
        .output()
        .with_context(|| format!("cannot run ipvsadm in {netns}"))?;
    if !out.status.success() {
        bail!(
            "ipvsadm -Sn in {netns} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect())
}

/// `ipvsadm -R` commands turning `current` into `wanted` (both `ipvsadm -Sn` lines): what
/// is missing added first, then what is no longer wanted deleted (real servers before
/// their virtual server, which takes its real servers with it).
fn ipvs_changes(current: &[String], wanted: &[String]) -> Vec<String> {
    let mut changes: Vec<String> = wanted
        .iter()
        .filter(|l| !current.contains(l))
        .cloned()
        .collect();
    for line in current.iter().filter(|l| !wanted.contains(l)) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["-a", kind, vip, "-r", real, ..] => {
                changes.push(format!("-d {kind} {vip} -r {real}"));
            }
            ["-A", kind, vip, ..] => changes.push(format!("-D {kind} {vip}")),
            _ => {}
        }
    }
    // A virtual server deleted takes its real servers: drop their own deletions.
    let deleted: Vec<String> = changes
        .iter()
        .filter_map(|c| c.strip_prefix("-D ").map(str::to_owned))
        .collect();
    changes.retain(|c| {
        !(c.starts_with("-d ")
            && deleted
                .iter()
                .any(|vs| c[3..].starts_with(&format!("{vs} "))))
    });
    changes
}

/// Removes what IPVS mode leaves on a node: virtual servers, `kube-ipvs0` (with its
/// addresses) and kube-proxy's ipsets. Best effort, and without loading IPVS into a kernel
/// that never had it loaded (no virtual server can exist then).
fn ipvs_remove(netns: &str) {
    if ipvs_loaded() && on_path("ipvsadm") {
        let _ = in_netns(netns, "ipvsadm", &["-C"]).output();
    }
    let _ = Command::new("ip")
        .args(["-n", netns, "link", "del", kube_proxy::DUMMY])
        .output();
    if on_path("ipset")
        && let Ok(out) = in_netns(netns, "ipset", &["list", "-n"]).output()
    {
        let existing = String::from_utf8_lossy(&out.stdout);
        let script: String = existing
            .lines()
            .filter(|name| IPSETS.iter().any(|s| s.name == *name))
            .map(|name| format!("destroy {name}\n"))
            .collect();
        if !script.is_empty() {
            let _ = feed(in_netns(netns, "ipset", &["restore"]), &script, "ipset");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[&str]) -> Vec<String> {
        text.iter().map(|l| (*l).to_owned()).collect()
    }

    #[test]
    fn ipvs_changes_add_first_and_delete_only_what_is_gone() {
        let current = lines(&[
            "-A -t 10.109.60.89:80 -s rr",
            "-a -t 10.109.60.89:80 -r 10.244.184.84:80 -m -w 1",
            "-a -t 10.109.60.89:80 -r 10.244.5.203:80 -m -w 1",
            "-A -t 10.0.0.1:443 -s rr",
            "-a -t 10.0.0.1:443 -r 10.244.1.1:443 -m -w 1",
        ]);
        let wanted = lines(&[
            "-A -t 10.109.60.89:80 -s rr",
            "-a -t 10.109.60.89:80 -r 10.244.184.65:80 -m -w 1",
            "-a -t 10.109.60.89:80 -r 10.244.5.203:80 -m -w 1",
        ]);
        assert_eq!(
            ipvs_changes(&current, &wanted),
            [
                "-a -t 10.109.60.89:80 -r 10.244.184.65:80 -m -w 1",
                "-d -t 10.109.60.89:80 -r 10.244.184.84:80",
                "-D -t 10.0.0.1:443",
            ]
        );
        assert!(ipvs_changes(&wanted, &wanted).is_empty());
    }
}
