//! From kernel events to journeys: `observation` decodes, `identity` says which
//! observations are one packet, `assemble` groups them, `explain` names every hop and
//! gives the verdict.

pub mod assemble;
pub mod explain;
pub mod identity;
pub mod memo;
pub mod model;
pub mod observation;
