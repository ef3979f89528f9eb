//! From kernel events to journeys: `observation` decodes, `identity` says which
//! observations are one packet, `assemble` groups them, `fate` says which drop events end a
//! packet, `explain` names every hop and gives the verdict (through `naming`, the cluster
//! model's names), `memo` keeps what explaining computes again and again.

pub mod assemble;
pub mod counted;
pub mod explain;
pub mod fate;
pub mod identity;
pub mod memo;
pub mod model;
pub mod naming;
pub mod observation;
