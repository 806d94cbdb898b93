//! mmseg's `FPN` neck: per level a 1×1 lateral conv, a nearest-neighbour top-down pathway, and a
//! 3×3 output conv; every level comes out at the same width (`lateral_convs.i.conv`,
//! `fpn_convs.i.conv`, no norm, no activation).

use tch::nn;
use tch::Tensor;

use crate::torch_init::{self, ConvInit};

#[derive(Debug)]
pub struct FpnNeck {
    lateral: Vec<nn::Conv2D>,
    output: Vec<nn::Conv2D>,
}

impl FpnNeck {
    pub fn new(vs: nn::Path, in_channels: &[i64], out_channels: i64) -> Self {
        // mmseg's FPN initialises its convolutions Xavier-uniform.
        let conv = |p: nn::Path, c_in, k: i64| torch_init::conv2d_with(p, c_in, out_channels, k, nn::ConvConfig { padding: k / 2, ..Default::default() }, ConvInit::XavierUniform);
        Self {
            lateral: in_channels.iter().enumerate().map(|(i, &c)| conv(&vs / "lateral_convs" / i / "conv", c, 1)).collect(),
            output: (0..in_channels.len()).map(|i| conv(&vs / "fpn_convs" / i / "conv", out_channels, 3)).collect(),
        }
    }

    /// Levels finest first → the same number of levels, `out_channels` wide.
    pub fn forward(&self, levels: &[Tensor]) -> Vec<Tensor> {
        let mut laterals: Vec<Tensor> = levels.iter().zip(&self.lateral).map(|(x, conv)| x.apply(conv)).collect();
        for i in (1..laterals.len()).rev() {
            let size = &laterals[i - 1].size()[2..];
            laterals[i - 1] = &laterals[i - 1] + laterals[i].upsample_nearest2d(size, None, None);
        }
        laterals.iter().zip(&self.output).map(|(x, conv)| x.apply(conv)).collect()
    }
}
