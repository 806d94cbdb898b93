use serde::{Deserialize, Serialize};

/// How 8-bit pixels become model inputs: `(pixel / 255 − mean) / std` per RGB channel.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    pub const IMAGENET: Normalization = Normalization { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

    /// Writes an interleaved RGB image into planar channels (CHW) of `out`.
    pub fn write_chw(&self, rgb: &[u8], out: &mut [f32]) {
        let plane = rgb.len() / 3;
        debug_assert_eq!(out.len(), rgb.len());
        for c in 0..3 {
            let (mean, std) = (self.mean[c], self.std[c]);
            let dst = &mut out[c * plane..(c + 1) * plane];
            for (d, px) in dst.iter_mut().zip(rgb.chunks_exact(3)) {
                *d = (px[c] as f32 / 255.0 - mean) / std;
            }
        }
    }
}
