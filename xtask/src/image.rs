//! `cargo xtask image [--out FILE] [--tag REF] [--tracer BIN]`: the agent's container
//! image as an OCI image layout in one tar archive, which `ctr images import`, `docker
//! load` (it also carries Docker's `manifest.json`), `podman load` and `skopeo copy
//! oci-archive:FILE docker://REGISTRY/…` accept.
//!
//! One layer, no base image: the release `tracer` at `/usr/local/bin/tracer` and the tools
//! it runs (`ip`, `tc`, `iptables-save`, `ip6tables-save`, `nft`, with iptables' extension
//! modules), each with the shared libraries `ldd` says it loads, copied from this machine.
//! The layer is built reproducibly (sorted, owner 0, mtime 0): the same inputs give the
//! same digests.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};
use serde_json::json;
use sha2::{Digest, Sha256};

/// The programs `tracer` runs, found on this machine's PATH.
const TOOLS: [&str; 5] = ["ip", "tc", "iptables-save", "ip6tables-save", "nft"];

/// iptables loads its match and target modules from here at run time.
const XTABLES: &str = "/usr/lib/x86_64-linux-gnu/xtables";

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let mut out = None;
    let mut tag = format!("ghcr.io/tracer-dev/tracer:{}", env!("CARGO_PKG_VERSION"));
    let mut tracer = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut value = || {
            rest.next()
                .cloned()
                .with_context(|| format!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--out" => out = Some(PathBuf::from(value()?)),
            "--tag" => tag = value()?,
            "--tracer" => tracer = Some(PathBuf::from(value()?)),
            other => bail!("cargo xtask image: unknown argument {other}"),
        }
    }
    let tracer = match tracer {
        Some(path) => path,
        None => crate::release_tracer()?.1,
    };
    let out = out.unwrap_or_else(|| {
        PathBuf::from(format!("tracer-image-{}.tar", env!("CARGO_PKG_VERSION")))
    });
    let digest = build(&tracer, &tag, &out)?;
    eprintln!(
        "wrote {} ({tag}, manifest {digest}): ctr images import / docker load -i / skopeo copy oci-archive:{}",
        out.display(),
        out.display()
    );
    Ok(())
}

fn sha256(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn command_path(name: &str) -> anyhow::Result<PathBuf> {
    for dir in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return Ok(path);
        }
    }
    bail!("{name} is not installed here (scripts/setup.sh installs it)")
}

/// The shared libraries `binary` loads, and its loader.
fn libraries(binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(binary).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text.contains("not a dynamic executable") || text.contains("statically linked") {
        return Ok(Vec::new());
    }
    if !out.status.success() {
        bail!(
            "ldd {}: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(path) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// Copies `from` (following links) into the root at `at` (its absolute path inside).
fn place(root: &Path, from: &Path, at: &Path) -> anyhow::Result<()> {
    let target = root.join(at.strip_prefix("/").unwrap_or(at));
    if let Some(dir) = target.parent() {
        fs::create_dir_all(dir)?;
    }
    fs::copy(from, &target).with_context(|| format!("copy {}", from.display()))?;
    Ok(())
}

/// Stages the image's root file system in `root`.
fn stage(root: &Path, tracer: &Path) -> anyhow::Result<()> {
    let mut binaries = vec![(tracer.to_path_buf(), PathBuf::from("/usr/local/bin/tracer"))];
    for tool in TOOLS {
        let path = command_path(tool)?;
        // Multi-call binaries (xtables) choose their job by the name they are run as.
        binaries.push((path.canonicalize()?, path));
    }
    if Path::new(XTABLES).is_dir() {
        for module in fs::read_dir(XTABLES)? {
            let module = module?.path();
            binaries.push((module.canonicalize()?, module));
        }
    }
    let mut libs = std::collections::BTreeSet::new();
    for (real, at) in &binaries {
        place(root, real, at)?;
        libs.extend(libraries(real)?);
    }
    for lib in libs {
        place(root, &lib, &lib)?;
    }
    for dir in ["tmp", "run/netns", "sys/fs/bpf", "proc", "etc"] {
        fs::create_dir_all(root.join(dir))?;
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/:/usr/local/bin/tracer\n",
    )?;
    fs::write(root.join("etc/group"), "root:x:0:\n")?;
    Ok(())
}

/// A reproducible tar of `dir`'s contents.
fn tar(dir: &Path, out: &Path) -> anyhow::Result<()> {
    // Entries named without a leading `./`, as `docker save` writes them.
    let mut names: Vec<_> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    let status = Command::new("tar")
        .args([
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--mtime=@0",
            "-cf",
        ])
        .arg(out)
        .arg("-C")
        .arg(dir)
        .args(names)
        .status()?;
    if !status.success() {
        bail!("tar {} failed", dir.display());
    }
    Ok(())
}

/// Writes the image archive; returns the manifest's digest.
pub fn build(tracer: &Path, tag: &str, out: &Path) -> anyhow::Result<String> {
    let work = std::env::temp_dir().join(format!("tracer-image-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    let result = build_in(&work, tracer, tag, out);
    let _ = fs::remove_dir_all(&work);
    result
}

fn build_in(work: &Path, tracer: &Path, tag: &str, out: &Path) -> anyhow::Result<String> {
    let root = work.join("rootfs");
    let layout = work.join("layout");
    let blobs = layout.join("blobs/sha256");
    fs::create_dir_all(&root)?;
    fs::create_dir_all(&blobs)?;
    stage(&root, tracer)?;
    let layer_tar = work.join("layer.tar");
    tar(&root, &layer_tar)?;
    let layer = fs::read(&layer_tar)?;
    let layer_digest = sha256(&layer);
    let blob = |digest: &str, bytes: &[u8]| -> anyhow::Result<()> {
        fs::write(blobs.join(digest.trim_start_matches("sha256:")), bytes)?;
        Ok(())
    };
    blob(&layer_digest, &layer)?;
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": ["/usr/local/bin/tracer"],
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "WorkingDir": "/",
            "Labels": {
                "org.opencontainers.image.title": "tracer",
                "org.opencontainers.image.version": env!("CARGO_PKG_VERSION"),
            },
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created_by": "cargo xtask image"}],
    }))?;
    let config_digest = sha256(&config);
    blob(&config_digest, &config)?;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len(),
        }],
    }))?;
    let manifest_digest = sha256(&manifest);
    blob(&manifest_digest, &manifest)?;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "annotations": {
                "io.containerd.image.name": tag,
                "org.opencontainers.image.ref.name": tag.rsplit_once(':').map_or("latest", |(_, t)| t),
            },
        }],
    });
    fs::write(layout.join("index.json"), serde_json::to_vec(&index)?)?;
    fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    // `docker load` of engines before OCI-archive support reads this.
    let docker = json!([{
        "Config": format!("blobs/sha256/{}", config_digest.trim_start_matches("sha256:")),
        "RepoTags": [tag],
        "Layers": [format!("blobs/sha256/{}", layer_digest.trim_start_matches("sha256:"))],
    }]);
    fs::write(layout.join("manifest.json"), serde_json::to_vec(&docker)?)?;
    tar(&layout, out)?;
    Ok(manifest_digest)
}
