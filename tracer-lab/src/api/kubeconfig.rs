//! A kubeconfig for the lab's API server: one cluster, context and user, all named
//! `tracer-lab`, plain HTTP and no credentials (the server listens on loopback only).

/// The name of the lab's cluster, context and user in the kubeconfig.
pub const NAME: &str = "tracer-lab";

/// A kubeconfig (YAML text) pointing at `server_url` (e.g. "http://127.0.0.1:6443"),
/// context/cluster/user named "tracer-lab", no auth.
pub fn kubeconfig(server_url: &str) -> String {
    // A JSON string is a valid YAML double-quoted scalar, whatever the URL holds.
    let server = serde_json::Value::from(server_url).to_string();
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {NAME}
  cluster:
    server: {server}
contexts:
- name: {NAME}
  context:
    cluster: {NAME}
    user: {NAME}
    namespace: default
current-context: {NAME}
users:
- name: {NAME}
  user: {{}}
preferences: {{}}
"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_at_the_server_with_one_context() {
        let config = kubeconfig("http://127.0.0.1:6443");
        assert!(config.contains("    server: \"http://127.0.0.1:6443\"\n"));
        assert!(config.contains("current-context: tracer-lab\n"));
        assert!(kubeconfig("http://x/\"quoted\"").contains(r#"server: "http://x/\"quoted\"""#));
    }
}
