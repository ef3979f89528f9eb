//! The naming rules against made-up discoveries: reuse, deletion, namespaces the API has
//! not named yet, attachment keys.

use k8s_openapi::{
    api::core::v1::{Pod, PodSpec, PodStatus},
    apimachinery::pkg::apis::meta::v1::ObjectMeta,
};

use super::{
    naming::{bindings, merge, reconcile},
    *,
};
use crate::topology::{
    Address, HostRole, Link, NetnsInfo,
    roles::{NodeRef, PodRef},
};

const NODE: u64 = 1;

fn link(ifindex: u32, name: &str, peer: Option<u32>) -> Link {
    Link {
        ifindex,
        name: name.into(),
        mtu: 1450,
        kind: "veth".into(),
        peer_ifindex: peer,
        up: true,
        master: None,
        vxlan: None,
    }
}

fn netns(cookie: u64, links: Vec<Link>, addresses: &[(u32, [u8; 4])]) -> NetnsInfo {
    NetnsInfo {
        cookie,
        inode: cookie,
        path: format!("/run/netns/ns{cookie}"),
        links,
        addresses: addresses
            .iter()
            .map(|&(ifindex, ip)| Address {
                ifindex,
                ip: Ipv4Addr::from(ip),
                prefix: 32,
            })
            .collect(),
        routes: vec![],
        dnat_rules: vec![],
        proxy_modes: vec![],
    }
}

/// Node cpu1 (cookie 1, 172.30.1.43) with one veth per Pod namespace: Pod namespace
/// `cookie` holds `eth0` (index 2) peered with the node's index `10 + cookie`.
fn discover(pods_in: &[(u64, [u8; 4])], model: &ClusterModel) -> Topology {
    let mut node_links = vec![link(3, "enp2s0", None)];
    let mut namespaces = Vec::new();
    for &(cookie, ip) in pods_in {
        let host_index = u32::try_from(10 + cookie).unwrap();
        node_links.push(link(host_index, &format!("cali{cookie}"), Some(2)));
        namespaces.push(netns(
            cookie,
            vec![link(2, "eth0", Some(host_index))],
            &[(2, ip)],
        ));
    }
    namespaces.insert(0, netns(NODE, node_links, &[(3, [172, 30, 1, 43])]));
    let nodes = [NodeRef {
        name: "cpu1".into(),
        ips: vec![Ipv4Addr::new(172, 30, 1, 43)],
    }];
    let pods: Vec<PodRef> = model
        .pods()
        .filter_map(|p| {
            Some(PodRef {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                ip: p.ip?,
                node: p.node.clone(),
            })
        })
        .collect();
    Topology::build(namespaces, &nodes, &pods)
}

fn model(pods: &[(&str, [u8; 4])]) -> ClusterModel {
    let pods: Vec<Pod> = pods
        .iter()
        .map(|&(name, ip)| Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some("cpu1".into()),
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                pod_ip: Some(Ipv4Addr::from(ip).to_string()),
                ..PodStatus::default()
            }),
        })
        .collect();
    ClusterModel::from_objects(&pods, &[], &[], &[])
}

fn pod_in(topology: &Topology, cookie: u64) -> Option<String> {
    match &topology.host(cookie)?.role {
        HostRole::Pod(p) => Some(p.name.clone()),
        _ => None,
    }
}

const OLD_IP: [u8; 4] = [10, 244, 184, 84];

/// Everything `apply` keeps between discoveries, minus the kernel.
struct Run {
    topology: Topology,
    bound: HashMap<String, u64>,
    doubted: HashSet<u64>,
    vanished: BTreeMap<u64, (Instant, Host)>,
    start: Instant,
}

impl Run {
    fn new(model: &ClusterModel, pods_in: &[(u64, [u8; 4])]) -> Self {
        let topology = discover(pods_in, model);
        Self {
            bound: bindings(&topology, model),
            topology,
            doubted: HashSet::new(),
            vanished: BTreeMap::new(),
            start: Instant::now(),
        }
    }

    /// One discovery at `secs` into the run; returns the notices.
    fn discover(
        &mut self,
        model: &ClusterModel,
        pods_in: &[(u64, [u8; 4])],
        secs: u64,
    ) -> Vec<String> {
        let mut live = discover(pods_in, model);
        let notices = reconcile(
            &self.topology,
            &mut live,
            &mut self.bound,
            &mut self.doubted,
            model,
        );
        self.topology = merge(
            live,
            &self.topology,
            &mut self.vanished,
            self.start + Duration::from_secs(secs),
        );
        notices
    }
}

#[test]
fn a_reused_address_is_not_given_to_the_old_pod_while_the_api_lags() {
    let old = model(&[("nginx-old", OLD_IP)]);
    let mut run = Run::new(&old, &[(5, OLD_IP)]);
    assert_eq!(pod_in(&run.topology, 5).as_deref(), Some("nginx-old"));

    // The old namespace is gone and a new one holds its address, but the API still
    // says nginx-old: the new namespace stays unnamed, the old one is remembered.
    let notices = run.discover(&old, &[(6, OLD_IP)], 1);
    assert_eq!(pod_in(&run.topology, 6), None);
    assert!(run.topology.host(6).is_some());
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(notices[0].contains("default/nginx-old"), "{notices:?}");
    assert_eq!(pod_in(&run.topology, 5).as_deref(), Some("nginx-old"));
    assert_eq!(
        run.topology
            .pod_by_ip(Ipv4Addr::from(OLD_IP))
            .map(|p| p.name.as_str()),
        Some("nginx-old"),
        "only the vanished namespace is named by that address"
    );
    // Said once.
    assert!(run.discover(&old, &[(6, OLD_IP)], 1).is_empty());

    // The API catches up: the new namespace is the new Pod, found first by address.
    let new = model(&[("nginx-new", OLD_IP)]);
    run.discover(&new, &[(6, OLD_IP)], 2);
    assert_eq!(pod_in(&run.topology, 6).as_deref(), Some("nginx-new"));
    assert_eq!(
        run.topology
            .pod_by_ip(Ipv4Addr::from(OLD_IP))
            .map(|p| p.name.as_str()),
        Some("nginx-new")
    );
    assert_eq!(pod_in(&run.topology, 5).as_deref(), Some("nginx-old"));

    // Long after it vanished, the old namespace is forgotten.
    run.discover(&new, &[(6, OLD_IP)], 2 + RETAIN.as_secs());
    assert!(run.topology.host(5).is_none());
    assert_eq!(pod_in(&run.topology, 6).as_deref(), Some("nginx-new"));
}

#[test]
fn a_namespace_keeps_its_pod_after_the_api_deleted_it() {
    let both = model(&[("nginx-old", OLD_IP), ("nginx-new", [10, 244, 184, 65])]);
    let mut run = Run::new(&both, &[(5, OLD_IP), (6, [10, 244, 184, 65])]);
    // The API deleted the old Pod before its namespace went (a new address).
    let new = model(&[("nginx-new", [10, 244, 184, 65])]);
    run.discover(&new, &[(5, OLD_IP), (6, [10, 244, 184, 65])], 1);
    assert_eq!(pod_in(&run.topology, 5).as_deref(), Some("nginx-old"));
    assert_eq!(pod_in(&run.topology, 6).as_deref(), Some("nginx-new"));
    // The host side of each veth still names its Pod.
    let role = run.topology.interface_role(NODE, 15);
    assert!(
        matches!(role, crate::topology::roles::InterfaceRole::HostVeth(p) if p.name == "nginx-old")
    );
}

#[test]
fn a_new_namespace_the_api_does_not_know_yet_is_unnamed_then_named() {
    let old = model(&[("nginx-old", OLD_IP)]);
    let mut run = Run::new(&old, &[(5, OLD_IP)]);
    // Wired before the API shows the Pod (a new address): nothing to name it by.
    assert!(
        run.discover(&old, &[(5, OLD_IP), (7, [10, 244, 184, 65])], 1)
            .is_empty()
    );
    assert_eq!(pod_in(&run.topology, 7), None);
    assert!(matches!(
        run.topology.interface_role(NODE, 17),
        crate::topology::roles::InterfaceRole::Other
    ));
    let both = model(&[("nginx-old", OLD_IP), ("nginx-new", [10, 244, 184, 65])]);
    run.discover(&both, &[(5, OLD_IP), (7, [10, 244, 184, 65])], 2);
    assert_eq!(pod_in(&run.topology, 7).as_deref(), Some("nginx-new"));
}

#[test]
fn attachments_are_keyed_by_namespace_and_index() {
    let m = model(&[("nginx-old", OLD_IP)]);
    let topology = discover(&[(5, OLD_IP)], &m);
    let wanted = super::super::attachments(&topology, &[Ipv4Addr::from(OLD_IP)]);
    let keys: BTreeSet<Key> = wanted.iter().filter_map(|a| key_of(&topology, a)).collect();
    // The uplink, the Pod's eth0 and its host side.
    assert_eq!(keys, BTreeSet::from([(NODE, 3), (5, 2), (NODE, 15)]));
    let stranger = Attachment {
        netns_path: "/run/netns/elsewhere".into(),
        interface: "eth0".into(),
        why: String::new(),
    };
    assert_eq!(key_of(&topology, &stranger), None);
}

#[test]
fn followed_addresses_are_the_targets_current_ones() {
    let m = model(&[("nginx-new", [10, 244, 184, 65])]);
    let gone = Target::Pod(crate::k8s::model::PodInfo {
        namespace: "default".into(),
        name: "nginx-old".into(),
        ip: Some(Ipv4Addr::from(OLD_IP)),
        node: None,
        ready: true,
        owner: None,
        uid: String::new(),
    });
    assert!(addresses_now(&m, &gone).is_empty());
    let ip = Target::Ip(Ipv4Addr::from(OLD_IP));
    assert_eq!(addresses_now(&m, &ip), [Ipv4Addr::from(OLD_IP)]);
    let Some(now) = m.pod("default", "nginx-new").cloned() else {
        panic!("pod");
    };
    assert_eq!(
        addresses_now(&m, &Target::Pod(now)),
        [Ipv4Addr::new(10, 244, 184, 65)]
    );
}
