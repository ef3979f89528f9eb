//! Linux capabilities of the current process, read from `/proc/self/status`.

use std::fs;

/// A capability `tracer` may need, with what it is needed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    pub name: &'static str,
    pub bit: u32,
    pub needed_for: &'static str,
}

pub const CAP_NET_ADMIN: Capability = Capability {
    name: "CAP_NET_ADMIN",
    bit: 12,
    needed_for: "attaching TC programs to interfaces",
};
pub const CAP_SYS_ADMIN: Capability = Capability {
    name: "CAP_SYS_ADMIN",
    bit: 21,
    needed_for: "entering other network namespaces (setns)",
};
pub const CAP_PERFMON: Capability = Capability {
    name: "CAP_PERFMON",
    bit: 38,
    needed_for: "tracepoint programs and reading kernel memory from them",
};
pub const CAP_BPF: Capability = Capability {
    name: "CAP_BPF",
    bit: 39,
    needed_for: "loading eBPF programs and creating maps",
};

/// What `tracer follow` needs.
pub const FOLLOW_NEEDS: [Capability; 4] = [CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_ADMIN];

/// The effective capability set of this process (0 if it cannot be read).
pub fn effective() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| parse_cap_eff(&status))
        .unwrap_or(0)
}

fn parse_cap_eff(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
}

pub fn has(effective: u64, cap: Capability) -> bool {
    effective & (1 << cap.bit) != 0
}

/// The capabilities among `needed` that the process lacks.
pub fn missing(needed: &[Capability]) -> Vec<Capability> {
    let eff = effective();
    needed.iter().copied().filter(|c| !has(eff, *c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_effective_set() {
        let status = "Name:\tx\nCapEff:\t000001ffffffffff\n";
        let eff = parse_cap_eff(status).unwrap();
        assert!(has(eff, CAP_BPF));
        let status = "CapEff:\t0000000000001000\n";
        let eff = parse_cap_eff(status).unwrap();
        assert!(has(eff, CAP_NET_ADMIN));
        assert!(!has(eff, CAP_BPF));
    }
}
