//! Several sources in one session: network-namespace cookies are numbered per kernel (a
//! counter from boot), so two machines — two node agents, two per-node recordings — can
//! both say "cookie 5". Before their inputs meet in one correlator, each source's cookies
//! are qualified with its [`SourceId`] in the top 16 bits, where no kernel's counter
//! reaches; the single source of a one-machine session is source 0, which leaves cookies
//! as they are.

use crate::{journey::observation::Observation, topology::Topology};

/// Which source an input came from; 0 is the only source of a one-machine session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceId(pub u16);

const SHIFT: u32 = 48;
const LOCAL_MASK: u64 = (1 << SHIFT) - 1;

impl SourceId {
    /// The source a qualified cookie came from.
    pub fn of(cookie: u64) -> Self {
        Self(u16::try_from(cookie >> SHIFT).unwrap_or(u16::MAX))
    }

    /// `cookie` made unique across sources; 0 ("unknown") stays 0.
    pub fn qualify(self, cookie: u64) -> u64 {
        if cookie == 0 {
            0
        } else {
            (u64::from(self.0) << SHIFT) | (cookie & LOCAL_MASK)
        }
    }

    /// Qualifies every cookie an observation carries.
    pub fn qualify_observations(self, batch: &mut [Observation]) {
        if self.0 == 0 {
            return;
        }
        for obs in batch {
            obs.netns_cookie = self.qualify(obs.netns_cookie);
        }
    }

    /// Qualifies every cookie a topology carries (namespaces, and the node each Pod is
    /// wired to).
    pub fn qualify_topology(self, topology: &mut Topology) {
        if self.0 == 0 {
            return;
        }
        for host in &mut topology.hosts {
            host.info.cookie = self.qualify(host.info.cookie);
            if let crate::topology::HostRole::Pod(pod) = &mut host.role {
                pod.node_cookie = pod.node_cookie.map(|c| self.qualify(c));
            }
        }
        topology.reindex();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_keep_equal_cookies_apart_and_source_zero_changes_nothing() {
        let (a, b) = (SourceId(0), SourceId(3));
        assert_eq!(a.qualify(5), 5);
        assert_ne!(a.qualify(5), b.qualify(5));
        assert_eq!(b.qualify(0), 0, "unknown stays unknown");
        assert_eq!(b.qualify(5) & LOCAL_MASK, 5);
    }
}
