//! Which cluster to talk to, chosen the way kubectl chooses.
//!
//! 1. `--kubeconfig PATH` (must exist);
//! 2. else `$KUBECONFIG`: its `:`-separated files that exist, merged by kubectl's rules
//!    (the first file to set a value wins; kube's `Kubeconfig::merge`);
//! 3. else `~/.kube/config` if it exists;
//! 4. else the in-cluster service account when running in a Pod
//!    (`KUBERNETES_SERVICE_HOST` and the mounted token).
//!
//! `--context` picks a context from the chosen kubeconfig, otherwise its `current-context`.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

use super::error::{K8sError, root_cause};

const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// What the choice depends on, read from the process (or given by tests).
#[derive(Clone, Debug)]
pub struct Environment {
    pub kubeconfig_var: Option<OsString>,
    pub home: Option<PathBuf>,
    pub in_cluster: bool,
}

impl Environment {
    pub fn from_process() -> Self {
        Self {
            kubeconfig_var: std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()),
            home: std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from),
            in_cluster: std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()
                && Path::new(SERVICE_ACCOUNT_TOKEN).exists(),
        }
    }

    fn home_config(&self) -> Option<PathBuf> {
        self.home.as_ref().map(|h| h.join(".kube").join("config"))
    }
}

/// Where the configuration comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Explicit(PathBuf),
    Env(Vec<PathBuf>),
    Home(PathBuf),
    InCluster,
}

impl Origin {
    fn paths(&self) -> &[PathBuf] {
        match self {
            Self::Explicit(p) | Self::Home(p) => std::slice::from_ref(p),
            Self::Env(ps) => ps,
            Self::InCluster => &[],
        }
    }

    fn name(&self) -> String {
        match self {
            Self::Explicit(p) | Self::Home(p) => p.display().to_string(),
            Self::Env(ps) => {
                let joined: Vec<String> = ps.iter().map(|p| p.display().to_string()).collect();
                format!("$KUBECONFIG ({})", joined.join(":"))
            }
            Self::InCluster => "in-cluster service account".to_owned(),
        }
    }
}

/// Picks the configuration source (step 1–4 of the module doc) without reading it.
pub fn choose(explicit: Option<&Path>, env: &Environment) -> Result<Origin, K8sError> {
    if let Some(path) = explicit {
        if !path.exists() {
            return Err(K8sError::Kubeconfig {
                origin: path.display().to_string(),
                message: "no such file".to_owned(),
            });
        }
        return Ok(Origin::Explicit(path.to_owned()));
    }
    if let Some(var) = &env.kubeconfig_var {
        let listed: Vec<PathBuf> = std::env::split_paths(var)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        let existing: Vec<PathBuf> = listed.iter().filter(|p| p.exists()).cloned().collect();
        if !existing.is_empty() {
            return Ok(Origin::Env(existing));
        }
    }
    if let Some(home) = env.home_config().filter(|p| p.exists()) {
        return Ok(Origin::Home(home));
    }
    if env.in_cluster {
        return Ok(Origin::InCluster);
    }
    Err(K8sError::NoConfig {
        home: env
            .home_config()
            .map_or_else(|| "~/.kube/config".to_owned(), |p| p.display().to_string()),
    })
}

/// Reads the chosen configuration; returns the client config and a description such as
/// "Kubernetes API https://127.0.0.1:16443 (context admin@prod)".
pub async fn load(
    origin: &Origin,
    context: Option<&str>,
) -> Result<(kube::Config, String), K8sError> {
    let fail = |message: String| K8sError::Kubeconfig {
        origin: origin.name(),
        message,
    };
    if *origin == Origin::InCluster {
        if let Some(context) = context {
            return Err(fail(format!(
                "--context {context} needs a kubeconfig, but none was found"
            )));
        }
        let config = kube::Config::incluster().map_err(|e| fail(e.to_string()))?;
        let url = url_text(&config.cluster_url);
        return Ok((
            config,
            format!("Kubernetes API {url} (in-cluster service account)"),
        ));
    }
    let mut merged = Kubeconfig::default();
    for path in origin.paths() {
        let next = Kubeconfig::read_from(path).map_err(|e| {
            fail(match &e {
                // The message names the file already: say only what went wrong with it.
                KubeconfigError::ReadConfig(cause, _) => root_cause(cause),
                other => first_line(other),
            })
        })?;
        merged = merged.merge(next).map_err(|e| fail(first_line(&e)))?;
    }
    let context_name = match context {
        Some(name) => {
            if !merged.contexts.iter().any(|c| c.name == name) {
                let known: Vec<&str> = merged.contexts.iter().map(|c| c.name.as_str()).collect();
                return Err(fail(format!(
                    "it has no context {name:?} (contexts: {})",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )));
            }
            Some(name.to_owned())
        }
        None => merged.current_context.clone(),
    };
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    let config = kube::Config::from_custom_kubeconfig(merged, &options)
        .await
        .map_err(|e| fail(first_line(&e)))?;
    let url = url_text(&config.cluster_url);
    let describe = match context_name {
        Some(name) => format!("Kubernetes API {url} (context {name})"),
        None => format!("Kubernetes API {url}"),
    };
    Ok((config, describe))
}

/// An error's first line: YAML errors go on with a drawing of the offending line.
fn first_line(error: &impl std::fmt::Display) -> String {
    let text = error.to_string();
    text.lines()
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_owned()
}

/// The API URL as people write it (`http::Uri` adds a trailing `/` to a bare authority).
pub fn url_text(uri: &impl std::fmt::Display) -> String {
    let text = uri.to_string();
    let after_scheme = text
        .split_once("://")
        .map_or(text.as_str(), |(_, rest)| rest);
    match after_scheme.find('/') {
        Some(i) if i + 1 == after_scheme.len() => text[..text.len() - 1].to_owned(),
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "tracer-k8s-kubeconfig-{}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn kubeconfig_text(server: &str, contexts: &[&str], current: &str) -> String {
        let mut text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: {current}\nclusters:\n- name: c\n  cluster:\n    server: {server}\nusers:\n- name: u\n  user:\n    token: t\ncontexts:\n"
        );
        for ctx in contexts {
            text.push_str(&format!(
                "- name: {ctx}\n  context:\n    cluster: c\n    user: u\n"
            ));
        }
        text
    }

    fn env_with(dir: &Path) -> Environment {
        Environment {
            kubeconfig_var: None,
            home: Some(dir.join("home")),
            in_cluster: false,
        }
    }

    #[test]
    fn order_is_explicit_env_home_incluster() {
        let dir = scratch("order");
        let mut env = env_with(&dir);
        let err = choose(None, &env).unwrap_err();
        assert!(matches!(err, K8sError::NoConfig { .. }), "{err}");
        // Chosen as kubectl chooses: nothing else is looked for, nor offered.
        assert_eq!(
            err.to_string(),
            format!(
                "no Kubernetes configuration found: no --kubeconfig, $KUBECONFIG is not set, {} does not exist and this is not a Pod. Give --kubeconfig, or use --cluster-file with the output of `{}` to run offline.",
                dir.join("home/.kube/config").display(),
                crate::k8s::file::HOW_TO_MAKE
            )
        );
        env.in_cluster = true;
        assert_eq!(choose(None, &env).unwrap(), Origin::InCluster);
        let home = dir.join("home/.kube/config");
        std::fs::create_dir_all(home.parent().unwrap()).unwrap();
        std::fs::write(&home, "x").unwrap();
        assert_eq!(choose(None, &env).unwrap(), Origin::Home(home.clone()));
        let a = dir.join("a");
        std::fs::write(&a, "x").unwrap();
        let listed = std::env::join_paths([dir.join("missing"), a.clone()]).unwrap();
        env.kubeconfig_var = Some(listed);
        assert_eq!(choose(None, &env).unwrap(), Origin::Env(vec![a.clone()]));
        assert_eq!(
            choose(Some(&home), &env).unwrap(),
            Origin::Explicit(home.clone())
        );
        let err = choose(Some(&dir.join("nope")), &env).unwrap_err();
        assert!(err.to_string().contains("no such file"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn context_selection_and_description() {
        let dir = scratch("context");
        let path = dir.join("config");
        std::fs::write(
            &path,
            kubeconfig_text("https://127.0.0.1:16443", &["one", "two"], "one"),
        )
        .unwrap();
        let origin = Origin::Explicit(path.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (config, describe) = rt.block_on(load(&origin, None)).unwrap();
        assert_eq!(
            describe,
            "Kubernetes API https://127.0.0.1:16443 (context one)"
        );
        assert_eq!(url_text(&config.cluster_url), "https://127.0.0.1:16443");
        let (_, describe) = rt.block_on(load(&origin, Some("two"))).unwrap();
        assert_eq!(
            describe,
            "Kubernetes API https://127.0.0.1:16443 (context two)"
        );
        let err = rt
            .block_on(load(&origin, Some("three")))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no context \"three\" (contexts: one, two)"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unreadable_kubeconfigs_are_named_once_on_one_line() {
        let dir = scratch("unreadable");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let load_error = |origin: &Origin| rt.block_on(load(origin, None)).unwrap_err().to_string();
        let err = load_error(&Origin::Explicit(dir.clone()));
        assert_eq!(
            err,
            format!(
                "cannot use the kubeconfig {}: is a directory",
                dir.display()
            )
        );
        let not_yaml = dir.join("passwd");
        std::fs::write(&not_yaml, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
        let err = load_error(&Origin::Explicit(not_yaml.clone()));
        assert!(
            err.starts_with(&format!(
                "cannot use the kubeconfig {}: failed to parse kubeconfig YAML",
                not_yaml.display()
            )),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
