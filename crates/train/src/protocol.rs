//! How a model covers an image at test time: ChangeCLIP's three protocols. `whole` runs the image
//! in one pass (every model); `slide` averages the logits of overlapping windows (mmseg's
//! `slide_inference`, ChangeCLIP's `*_test.py`); `tiles` is ChangeCLIP's LEVIR-CD evaluation
//! (`tools/test.sh` + `merge_data.py`): the image is reflect-padded, cut into overlapping tiles,
//! each tile is argmaxed on its own, and a pixel is changed if any tile covering it says so.
//! "Argmax" is the model's decision threshold where it has one (`decision.rs`): ½ is the argmax.

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use changedet_models::{ChangeModel, Decision};
use changedet_raster::tiling::tile_origins;

use crate::{Result, TrainError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Protocol {
    Whole,
    /// Windows of `crop` pixels every `stride` (the last one flush with the edge), logits
    /// averaged where windows overlap, then argmax.
    Slide { crop: i64, stride: i64 },
    /// Reflect-pad by `pad`, windows of `crop` every `stride`, each window argmaxed, OR-merged,
    /// padding cropped (LEVIR-CD: 256, 192, 96 → 36 tiles of a 1024 image).
    Tiles { crop: i64, stride: i64, pad: i64 },
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Protocol::Whole => write!(f, "whole"),
            Protocol::Slide { crop, stride } => write!(f, "slide:{crop}:{stride}"),
            Protocol::Tiles { crop, stride, pad } => write!(f, "tiles:{crop}:{stride}:{pad}"),
        }
    }
}

impl std::str::FromStr for Protocol {
    type Err = String;
    /// `whole`, `slide:CROP:STRIDE` (ChangeCLIP: `slide:256:128`), `tiles:CROP:STRIDE:PAD`, or
    /// `levir-tiles` (= `tiles:256:192:96`).
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let num = |i: usize| parts.get(i).and_then(|p| p.parse::<i64>().ok()).filter(|&n| n > 0).ok_or_else(|| format!("bad protocol '{s}'"));
        let protocol = match parts[0] {
            "whole" => Protocol::Whole,
            "slide" => Protocol::Slide { crop: num(1)?, stride: num(2)? },
            "tiles" => Protocol::Tiles { crop: num(1)?, stride: num(2)?, pad: parts.get(3).and_then(|p| p.parse().ok()).ok_or_else(|| format!("bad protocol '{s}'"))? },
            "levir-tiles" => Protocol::Tiles { crop: 256, stride: 192, pad: 96 },
            _ => return Err(format!("unknown protocol '{s}' (whole, slide:CROP:STRIDE, tiles:CROP:STRIDE:PAD, levir-tiles)")),
        };
        Ok(protocol)
    }
}

/// Window origins along a side of `len`: the scene pipeline's tile grid (every `stride`, the
/// last one flush with the end, one window at 0 on a side shorter than it). The protocols
/// differ from scenes in what they do where windows overlap (the reference's plain logit
/// average or OR of argmaxes, not a smooth blend), not in where the windows are.
fn origins(len: i64, crop: i64, stride: i64) -> Vec<i64> {
    tile_origins(len as usize, crop as usize, stride as usize).into_iter().map(|o| o as i64).collect()
}

impl Protocol {
    /// Windows must be multiples of the model's size multiple and fit in the (padded) image.
    pub fn check_windows(&self, model: &dyn ChangeModel, height: usize, width: usize) -> Result<()> {
        let (crop, padding) = match *self {
            Protocol::Whole => return Ok(()),
            Protocol::Slide { crop, .. } => (crop, 0),
            Protocol::Tiles { crop, pad, .. } => (crop, 2 * pad),
        };
        let multiple = model.size_multiple() as i64;
        if crop % multiple != 0 {
            return Err(TrainError::Config(format!("protocol {self}: the model needs windows whose side is a multiple of {multiple}")));
        }
        if (height as i64 + padding) < crop || (width as i64 + padding) < crop {
            return Err(TrainError::Config(format!("{width}×{height} images are smaller than the {crop}-pixel window of protocol {self}")));
        }
        Ok(())
    }

    /// Change logits `[n, 2, h, w]` (averaged over windows) and the change map `[n, h, w]`
    /// (uint8 0/1: change probability above `threshold`) under this protocol. Windows see their
    /// pair's class lists.
    pub fn change(&self, model: &dyn ChangeModel, before: &Tensor, after: &Tensor, classes: &[[Vec<String>; 2]], threshold: f64) -> (Tensor, Tensor) {
        let run = |b: &Tensor, a: &Tensor| tch::no_grad(|| model.forward_with_classes_t(b, a, classes, false).logits);
        let mask = |logits: &Tensor| Decision::mask(&(logits.select(1, 1) - logits.select(1, 0)), threshold);
        match *self {
            Protocol::Whole => {
                let logits = run(before, after);
                let change = mask(&logits);
                (logits, change)
            }
            Protocol::Slide { crop, stride } => {
                let (logits, _) = windows(before, after, crop, stride, &run, &mask);
                let change = mask(&logits);
                (logits, change)
            }
            Protocol::Tiles { crop, stride, pad } => {
                let (h, w) = (before.size()[2], before.size()[3]);
                let padded = |x: &Tensor| x.reflection_pad2d([pad, pad, pad, pad]);
                let (logits, votes) = windows(&padded(before), &padded(after), crop, stride, &run, &mask);
                let unpad = |x: Tensor| x.narrow(-2, pad, h).narrow(-1, pad, w);
                (unpad(logits), unpad(votes.gt(0.0).to_kind(Kind::Uint8)))
            }
        }
    }
}

/// Runs `run` on every window; returns the logits averaged over windows `[n, 2, h, w]` and, per
/// pixel, the number of windows whose `mask` is "changed" `[n, h, w]`.
fn windows(before: &Tensor, after: &Tensor, crop: i64, stride: i64, run: &dyn Fn(&Tensor, &Tensor) -> Tensor, mask: &dyn Fn(&Tensor) -> Tensor) -> (Tensor, Tensor) {
    let (n, _, h, w) = before.size4().expect("[n, 3, h, w]");
    let options = (Kind::Float, before.device());
    let sum = Tensor::zeros([n, 2, h, w], options);
    let count = Tensor::zeros([1, 1, h, w], options);
    let votes = Tensor::zeros([n, h, w], options);
    for &y in &origins(h, crop, stride) {
        for &x in &origins(w, crop, stride) {
            let window = |t: &Tensor| t.narrow(2, y, crop.min(h)).narrow(3, x, crop.min(w));
            let logits = run(&window(before), &window(after));
            let _ = sum.narrow(2, y, crop.min(h)).narrow(3, x, crop.min(w)).g_add_(&logits);
            let _ = count.narrow(2, y, crop.min(h)).narrow(3, x, crop.min(w)).g_add_scalar_(1.0);
            let _ = votes.narrow(1, y, crop.min(h)).narrow(2, x, crop.min(w)).g_add_(&mask(&logits).to_kind(Kind::Float));
        }
    }
    (sum / count, votes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_every_pixel_and_the_levir_grid_has_36_tiles() {
        assert_eq!(origins(1216, 256, 192), [0, 192, 384, 576, 768, 960]);
        assert_eq!(origins(1024, 256, 128), [0, 128, 256, 384, 512, 640, 768]);
        assert_eq!(origins(300, 256, 128), [0, 44]);
        assert_eq!(origins(256, 256, 128), [0]);
        assert_eq!("levir-tiles".parse::<Protocol>().unwrap(), Protocol::Tiles { crop: 256, stride: 192, pad: 96 });
        assert_eq!("slide:256:128".parse::<Protocol>().unwrap().to_string(), "slide:256:128");
        assert!("slide:256".parse::<Protocol>().is_err());
    }
}
