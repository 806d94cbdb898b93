//! Colour overlays of a change map on the after image, for a quick look by a person.

use crate::Raster;

/// Colours of the overlay classes (RGB), blended at `ALPHA` over the image.
pub struct Overlay;

impl Overlay {
    pub const CHANGE: [u8; 3] = [255, 0, 0];
    pub const TRUE_POSITIVE: [u8; 3] = [255, 255, 255];
    pub const FALSE_POSITIVE: [u8; 3] = [255, 0, 0];
    pub const FALSE_NEGATIVE: [u8; 3] = [0, 160, 255];
    const ALPHA: f32 = 0.55;
}

fn paint(image: &Raster, colour_of: impl Fn(usize) -> Option<[u8; 3]>) -> Vec<u8> {
    let mut out = image.data.clone();
    for (i, px) in out.chunks_exact_mut(3).enumerate() {
        if let Some(c) = colour_of(i) {
            for k in 0..3 {
                px[k] = (px[k] as f32 * (1.0 - Overlay::ALPHA) + c[k] as f32 * Overlay::ALPHA).round() as u8;
            }
        }
    }
    out
}

/// Changed pixels (`change[i] != 0`) tinted red over an RGB image.
pub fn overlay_change(image: &Raster, change: &[u8]) -> Vec<u8> {
    paint(image, |i| (change[i] != 0).then_some(Overlay::CHANGE))
}

/// True positives white, false positives red, false negatives blue; `label` in 0/1, other
/// values (ignore) left untinted.
pub fn overlay_errors(image: &Raster, change: &[u8], label: &[u8]) -> Vec<u8> {
    paint(image, |i| match (change[i] != 0, label[i]) {
        (true, 1) => Some(Overlay::TRUE_POSITIVE),
        (true, 0) => Some(Overlay::FALSE_POSITIVE),
        (false, 1) => Some(Overlay::FALSE_NEGATIVE),
        _ => None,
    })
}
