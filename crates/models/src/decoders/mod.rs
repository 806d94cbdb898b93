//! Decoders that merge an encoder's feature pyramid into one map, and necks that refine a pyramid.

pub mod fpn;
pub mod fpn_neck;
pub mod swin_text;
