//! Why the cluster could not be loaded, in words a user can act on.

use std::time::Duration;

use super::file::{FileError, HOW_TO_MAKE};

/// Added to every API failure: the offline way out.
pub const OFFLINE_HINT: &str = "Use --cluster-file with the output of `kubectl get pods,services,endpointslices,nodes -A -o json` to run offline.";

#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("cannot use the kubeconfig {origin}: {message}")]
    Kubeconfig { origin: String, message: String },
    #[error(
        "no Kubernetes configuration found: no --kubeconfig, $KUBECONFIG is not set, {home} does not exist and this is not a Pod. Give --kubeconfig, or use --cluster-file with the output of `{HOW_TO_MAKE}` to run offline."
    )]
    NoConfig { home: String },
    #[error("cannot reach the Kubernetes API at {url}: {cause}. {OFFLINE_HINT}")]
    Unreachable { url: String, cause: String },
    #[error("the Kubernetes API at {url} refused to list {what}: {cause}. {OFFLINE_HINT}")]
    Refused {
        url: String,
        what: &'static str,
        cause: String,
    },
    /// It answered, but not as a Kubernetes API does (not JSON, not the objects asked for):
    /// a proxy, a web page, the wrong port.
    #[error(
        "the Kubernetes API at {url} answered the list of {what} with something that is not a Kubernetes reply ({cause}); is {url} a Kubernetes API server? {OFFLINE_HINT}"
    )]
    BadReply {
        url: String,
        what: &'static str,
        cause: String,
    },
    #[error("the Kubernetes API at {url} did not send the cluster's objects within {}s. {OFFLINE_HINT}", .timeout.as_secs_f32())]
    Timeout { url: String, timeout: Duration },
    #[error("cannot start the Kubernetes watch thread: {0}")]
    Runtime(#[source] std::io::Error),
}

/// The innermost cause of `error`, which is what a person needs (e.g. "connection
/// refused"), without Rust's "(os error N)" suffix.
pub fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = error;
    while let Some(next) = innermost.source() {
        innermost = next;
    }
    let text = innermost.to_string();
    let text = match text.find(" (os error ") {
        Some(i) if text.ends_with(')') => text[..i].to_owned(),
        _ => text,
    };
    // "Connection refused" → "connection refused", but leave "TLS …" alone.
    let mut chars = text.chars();
    match (chars.next(), chars.next()) {
        (Some(first), Some(second)) if first.is_uppercase() && second.is_lowercase() => {
            first.to_lowercase().chain(text.chars().skip(1)).collect()
        }
        _ => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("client error (Connect)")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn root_cause_is_the_innermost_error_in_plain_words() {
        let inner = std::io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(root_cause(&Outer(inner)), "connection refused");
        let tls = std::io::Error::other("TLS handshake failed");
        assert_eq!(root_cause(&Outer(tls)), "TLS handshake failed");
    }

    #[test]
    fn api_errors_suggest_the_cluster_file() {
        let err = K8sError::Unreachable {
            url: "https://127.0.0.1:16443".into(),
            cause: "connection refused".into(),
        };
        assert_eq!(
            err.to_string(),
            "cannot reach the Kubernetes API at https://127.0.0.1:16443: connection refused. Use --cluster-file with the output of `kubectl get pods,services,endpointslices,nodes -A -o json` to run offline."
        );
    }
}
