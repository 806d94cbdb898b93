use serde::{Deserialize, Serialize};

/// How 8-bit pixels become model inputs: `(pixel / 255 − mean) / std` per RGB channel.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: [f64; 3],
    pub std: [f64; 3],
}

impl Normalization {
    pub const IMAGENET: Normalization = Normalization { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

    /// One channel value. The reference transforms divide by 255 in f32, then subtract and
    /// divide with Python floats (numpy promotes to f64 and rounds back to f32 after each step);
    /// doing the same makes our inputs bit-identical to theirs.
    pub fn apply(&self, pixel: u8, channel: usize) -> f32 {
        self.apply_value(pixel as f32, channel)
    }

    /// The same for a value already on the 0–255 scale but not necessarily whole (16-bit scenes
    /// after their scaling).
    pub fn apply_value(&self, value: f32, channel: usize) -> f32 {
        let scaled = value / 255.0;
        let centred = (scaled as f64 - self.mean[channel]) as f32;
        (centred as f64 / self.std[channel]) as f32
    }

    /// Writes an interleaved RGB image into planar channels (CHW) of `out`.
    pub fn write_chw(&self, rgb: &[u8], out: &mut [f32]) {
        let plane = rgb.len() / 3;
        debug_assert_eq!(out.len(), rgb.len());
        for c in 0..3 {
            let dst = &mut out[c * plane..(c + 1) * plane];
            for (d, px) in dst.iter_mut().zip(rgb.chunks_exact(3)) {
                *d = self.apply(px[c], c);
            }
        }
    }
}
