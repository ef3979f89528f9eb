//! Builds the eBPF programs (`tracer-ebpf`) with the nightly toolchain and bpf-linker, and
//! leaves the object in `OUT_DIR/tracer` for `include_bytes_aligned!`. Where that toolchain
//! is missing (or `AYA_BUILD_SKIP=1`), the object is left empty and the binary says at run
//! time that it has no kernel programs, so the userspace side still builds and unit-tests.

use std::{env, fs, path::PathBuf, process::Command};

use anyhow::Context as _;

fn main() -> anyhow::Result<()> {
    println!("cargo::rustc-check-cfg=cfg(tracer_ebpf_skipped)");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR not set")?);
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("no manifest dir")?);
    let ebpf_dir = manifest_dir.join("../tracer-ebpf");
    let ebpf_dir = ebpf_dir.to_str().context("non-UTF-8 path to tracer-ebpf")?;

    let skip_requested =
        env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    let missing = if skip_requested {
        None
    } else {
        missing_toolchain()
    };
    if skip_requested || missing.is_some() {
        let why = missing.unwrap_or_else(|| "AYA_BUILD_SKIP=1".to_owned());
        println!(
            "cargo:warning=building tracer WITHOUT its eBPF programs ({why}); `follow`, `doctor` \
             probes and the kernel tests will not work. Run scripts/setup.sh to install the toolchain."
        );
        println!("cargo:rustc-cfg=tracer_ebpf_skipped");
        println!("cargo:rerun-if-changed={ebpf_dir}");
        // Look again once the toolchain may be there (scripts/setup.sh puts bpf-linker on
        // PATH), not only when the programs' sources change.
        println!("cargo:rerun-if-env-changed=PATH");
        println!("cargo:rerun-if-env-changed=RUSTUP_TOOLCHAIN");
        fs::write(out_dir.join("tracer"), []).context("write empty eBPF object")?;
        return Ok(());
    }

    let package = aya_build::Package {
        name: "tracer-ebpf",
        root_dir: ebpf_dir,
        ..Default::default()
    };
    aya_build::build_ebpf([package], aya_build::Toolchain::Nightly).context("build tracer-ebpf")
}

/// Says what is missing to build eBPF programs, if anything.
fn missing_toolchain() -> Option<String> {
    let on_path = env::var_os("PATH")
        .is_some_and(|path| env::split_paths(&path).any(|dir| dir.join("bpf-linker").is_file()));
    if !on_path {
        return Some("bpf-linker not found on PATH".to_owned());
    }
    let sysroot = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    match sysroot {
        None => Some("the nightly toolchain is not installed".to_owned()),
        Some(root) if !root.join("lib/rustlib/src/rust/library/core").is_dir() => {
            Some("rust-src is not installed for nightly".to_owned())
        }
        Some(_) => None,
    }
}
