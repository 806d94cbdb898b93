//! Decoders that merge an encoder's feature pyramid into one map.

pub mod fpn;
