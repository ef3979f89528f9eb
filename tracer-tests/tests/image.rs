//! `cargo xtask image`: the agent's OCI image archive (issue #13). The archive is read as
//! an OCI image layout is (index → manifest → config and layer, every digest and size
//! checked), as Docker's `manifest.json` is, and the layer is unpacked and run: tracer
//! and each tool it runs start inside it, with nothing from this machine but the kernel.
//! Needs root (chroot); serial.

use std::{path::Path, process::Command};

use serde_json::Value;
use tracer_tests::{release_tracer_bin, require_root};

/// This test's own directory, removed also when it fails.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn create() -> Self {
        let dir = std::env::temp_dir().join(format!("tracer-image-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    format!("sha256:{}", text.split_whitespace().next().unwrap())
}

fn blob(layout: &Path, digest: &str) -> std::path::PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

/// The blob a descriptor names, checked against its digest and size.
fn checked(layout: &Path, descriptor: &Value) -> std::path::PathBuf {
    let digest = descriptor["digest"].as_str().unwrap();
    let path = blob(layout, digest);
    assert_eq!(sha256_of(&path), digest, "{}", path.display());
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        descriptor["size"].as_u64().unwrap()
    );
    path
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn the_agent_image_is_an_oci_archive_that_runs_tracer_and_its_tools() {
    if !require_root() {
        return;
    }
    let scratch = Scratch::create();
    let archive = scratch.path().join("tracer.tar");
    let tracer = release_tracer_bin();
    let out = Command::new("cargo")
        .args([
            "xtask",
            "image",
            "--tag",
            "example.org/tracer:test",
            "--out",
        ])
        .arg(&archive)
        .arg("--tracer")
        .arg(&tracer)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let layout = scratch.path().join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    tracer_tests::run(&[
        "tar",
        "-xf",
        archive.to_str().unwrap(),
        "-C",
        layout.to_str().unwrap(),
    ]);
    assert_eq!(
        json(&layout.join("oci-layout"))["imageLayoutVersion"],
        "1.0.0"
    );
    let index = json(&layout.join("index.json"));
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 1);
    assert_eq!(
        manifests[0]["annotations"]["io.containerd.image.name"],
        "example.org/tracer:test"
    );
    let manifest = json(&checked(&layout, &manifests[0]));
    let config = json(&checked(&layout, &manifest["config"]));
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    let layer = checked(&layout, &layers[0]);
    // An uncompressed layer's digest is its diff ID.
    assert_eq!(config["rootfs"]["diff_ids"][0], layers[0]["digest"]);
    assert_eq!(config["config"]["Entrypoint"][0], "/usr/local/bin/tracer");
    // Docker's view of the same archive.
    let docker = json(&layout.join("manifest.json"));
    assert_eq!(docker[0]["RepoTags"][0], "example.org/tracer:test");
    for path in std::iter::once(&docker[0]["Config"]).chain(docker[0]["Layers"].as_array().unwrap())
    {
        assert!(layout.join(path.as_str().unwrap()).is_file(), "{path}");
    }

    // The layer alone runs tracer and every tool tracer runs.
    let root = scratch.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    tracer_tests::run(&[
        "tar",
        "-xf",
        layer.to_str().unwrap(),
        "-C",
        root.to_str().unwrap(),
    ]);
    assert_eq!(
        sha256_of(&root.join("usr/local/bin/tracer")),
        sha256_of(&tracer)
    );
    for (program, says) in [
        ("/usr/local/bin/tracer", "tracer "),
        ("/usr/sbin/iptables-save", "iptables-save v"),
        ("/usr/sbin/ip6tables-save", "ip6tables-save v"),
        ("/usr/sbin/nft", "nftables v"),
        ("/usr/sbin/ip", "ip utility"),
        ("/usr/sbin/tc", "tc utility"),
    ] {
        let flag = if program.ends_with("/ip") || program.ends_with("/tc") {
            "-V"
        } else {
            "--version"
        };
        let out = Command::new("chroot")
            .arg(&root)
            .args([program, flag])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains(says),
            "{program} {flag} in the image: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
