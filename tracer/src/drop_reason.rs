//! Names for the kernel's drop reasons (`enum skb_drop_reason`), read from BTF: the enum
//! grows and is renumbered between kernels, so a table compiled in would be wrong somewhere.

use std::collections::HashMap;

use crate::btf::{Btf, BtfError};

const PREFIX: &str = "SKB_DROP_REASON_";

#[derive(Debug, Clone, Default)]
pub struct DropReasons {
    names: HashMap<u32, String>,
}

impl DropReasons {
    pub fn from_btf(btf: &Btf) -> Result<Self, BtfError> {
        let names = btf
            .enum_values("skb_drop_reason")?
            .into_iter()
            .filter_map(|(name, value)| {
                let value = u32::try_from(value).ok()?;
                Some((value, name.strip_prefix(PREFIX).unwrap_or(&name).to_owned()))
            })
            .collect();
        Ok(Self { names })
    }

    /// `NO_SOCKET`, `NETFILTER_DROP`, …; `reason 77` for a value this kernel does not name.
    pub fn name(&self, reason: u32) -> String {
        self.names
            .get(&reason)
            .cloned()
            .unwrap_or_else(|| format!("reason {reason}"))
    }

    /// Whether this value is the kernel's "not a drop" marker (`kfree_skb` calls that mean
    /// "freed, not consumed" carry NOT_SPECIFIED; `consume_skb` paths carry NOT_DROPPED_YET).
    pub fn is_unspecific(&self, reason: u32) -> bool {
        matches!(
            self.names.get(&reason).map(String::as_str),
            Some("NOT_SPECIFIED" | "NOT_DROPPED_YET")
        )
    }

    #[cfg(test)]
    pub fn from_pairs(pairs: &[(u32, &str)]) -> Self {
        Self {
            names: pairs.iter().map(|(v, n)| (*v, (*n).to_owned())).collect(),
        }
    }
}

impl DropReasons {
    /// Every (value, name) pair, for a recording.
    pub fn to_pairs(&self) -> Vec<(u32, String)> {
        let mut pairs: Vec<_> = self.names.iter().map(|(v, n)| (*v, n.clone())).collect();
        pairs.sort_unstable();
        pairs
    }

    /// The names a recording carries (the recording machine's kernel, not this one's).
    pub fn from_recorded(pairs: Vec<(u32, String)>) -> Self {
        Self {
            names: pairs.into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_are_shown_as_numbers() {
        let reasons = DropReasons::from_pairs(&[(2, "NO_SOCKET")]);
        assert_eq!(reasons.name(2), "NO_SOCKET");
        assert_eq!(reasons.name(999), "reason 999");
    }
}
