//! The pieces CLIP's text and vision towers share: OpenAI's pre-LN residual attention block
//! (`nn.MultiheadAttention` with a packed in-projection, QuickGELU MLP) and the helpers the
//! other CLIP modules use.

use tch::nn::{self, Module};
use tch::Tensor;

pub(crate) fn layer_norm(vs: nn::Path, width: i64) -> nn::LayerNorm {
    nn::layer_norm(vs, vec![width], Default::default())
}

pub(crate) fn linear(vs: nn::Path, c_in: i64, c_out: i64, bias: bool) -> nn::Linear {
    nn::linear(vs, c_in, c_out, nn::LinearConfig { bias, ..Default::default() })
}

/// `x · σ(1.702 x)`, OpenAI's approximation of GELU, which its weights were trained with.
pub(crate) fn quick_gelu(x: &Tensor) -> Tensor {
    x * (x * 1.702).sigmoid()
}

/// Multi-head scaled dot-product attention: `q` `[n, lq, c]`, `k`/`v` `[n, lk, c]` → `[n, lq, c]`,
/// scale `head_dim^-½`, optionally causal.
pub(crate) fn attention(q: &Tensor, k: &Tensor, v: &Tensor, heads: i64, causal: bool) -> Tensor {
    let (n, lq, c) = q.size3().expect("[n, l, c] queries");
    let lk = k.size()[1];
    let split = |t: &Tensor, l: i64| t.reshape([n, l, heads, -1]).transpose(1, 2);
    let (qh, kh, vh) = (split(q, lq), split(k, lk), split(v, lk));
    Tensor::scaled_dot_product_attention(&qh, &kh, &vh, None::<Tensor>, 0.0, causal, None, false).transpose(1, 2).reshape([n, lq, c])
}

/// Stochastic depth: drops each sample's residual branch with probability `rate` in training.
pub(crate) fn drop_path(x: Tensor, rate: f64, train: bool) -> Tensor {
    if !train || rate == 0.0 {
        return x;
    }
    let keep = 1.0 - rate;
    let mut shape = vec![1i64; x.dim()];
    shape[0] = x.size()[0];
    let mask = Tensor::empty(shape.as_slice(), (x.kind(), x.device())).bernoulli_float_(keep);
    x * mask / keep
}

/// `nn.MultiheadAttention` as CLIP stores it: `in_proj_weight` `[3c, c]`, `in_proj_bias`,
/// `out_proj`.
#[derive(Debug)]
struct PackedSelfAttention {
    in_proj_weight: Tensor,
    in_proj_bias: Tensor,
    out_proj: nn::Linear,
    heads: i64,
}

impl PackedSelfAttention {
    fn new(vs: nn::Path, width: i64, heads: i64) -> Self {
        let bound = (6.0 / (4 * width) as f64).sqrt();
        Self {
            in_proj_weight: vs.var("in_proj_weight", &[3 * width, width], nn::Init::Uniform { lo: -bound, up: bound }),
            in_proj_bias: vs.zeros("in_proj_bias", &[3 * width]),
            out_proj: linear(&vs / "out_proj", width, width, true),
            heads,
        }
    }

    fn forward(&self, x: &Tensor, causal: bool) -> Tensor {
        let qkv = x.linear(&self.in_proj_weight, Some(&self.in_proj_bias)).chunk(3, -1);
        self.out_proj.forward(&attention(&qkv[0], &qkv[1], &qkv[2], self.heads, causal))
    }
}

#[derive(Debug)]
struct ResidualAttentionBlock {
    attn: PackedSelfAttention,
    ln_1: nn::LayerNorm,
    c_fc: nn::Linear,
    c_proj: nn::Linear,
    ln_2: nn::LayerNorm,
    drop_path: f64,
}

impl ResidualAttentionBlock {
    fn new(vs: nn::Path, width: i64, heads: i64, drop_path: f64) -> Self {
        Self {
            attn: PackedSelfAttention::new(&vs / "attn", width, heads),
            ln_1: layer_norm(&vs / "ln_1", width),
            c_fc: linear(&vs / "mlp" / "c_fc", width, 4 * width, true),
            c_proj: linear(&vs / "mlp" / "c_proj", 4 * width, width, true),
            ln_2: layer_norm(&vs / "ln_2", width),
            drop_path,
        }
    }

    fn forward_t(&self, x: &Tensor, causal: bool, train: bool) -> Tensor {
        let x = x + drop_path(self.attn.forward(&self.ln_1.forward(x), causal), self.drop_path, train);
        let mlp = self.c_proj.forward(&quick_gelu(&self.c_fc.forward(&self.ln_2.forward(&x))));
        &x + drop_path(mlp, self.drop_path, train)
    }
}

/// `transformer.resblocks.{i}`: a stack of residual attention blocks on `[n, l, width]`
/// (batch-first; the reference's `[l, n, c]` layout is only a permutation).
#[derive(Debug)]
pub struct Transformer {
    blocks: Vec<ResidualAttentionBlock>,
    causal: bool,
}

impl Transformer {
    /// `drop_path_rate` rises linearly from 0 over the blocks; `causal` masks future tokens.
    pub fn new(vs: nn::Path, width: i64, layers: i64, heads: i64, drop_path_rate: f64, causal: bool) -> Self {
        let rate = |i: i64| if layers > 1 { drop_path_rate * i as f64 / (layers - 1) as f64 } else { 0.0 };
        let resblocks = &vs / "resblocks";
        Self { blocks: (0..layers).map(|i| ResidualAttentionBlock::new(&resblocks / i, width, heads, rate(i))).collect(), causal }
    }

    /// Runs every block, handing the output of each to `tap(index, tokens)`.
    pub fn forward_tapped(&self, x: &Tensor, train: bool, mut tap: impl FnMut(usize, &Tensor)) -> Tensor {
        let mut x = x.shallow_clone();
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward_t(&x, self.causal, train);
            tap(i, &x);
        }
        x
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.forward_tapped(x, train, |_, _| {})
    }
}

/// A learned positional grid `[1 + g², c]` (class row first) resized bilinearly
/// (align_corners false, no antialiasing) to `h × w`: `[1 + h·w, c]`.
pub fn resize_positional_grid(pos: &Tensor, h: i64, w: i64) -> Tensor {
    let (rows, c) = pos.size2().expect("[1 + g², c]");
    let grid = ((rows - 1) as f64).sqrt().round() as i64;
    if grid == h && grid == w {
        return pos.shallow_clone();
    }
    let spatial = pos.narrow(0, 1, rows - 1).reshape([1, grid, grid, c]).permute([0, 3, 1, 2]);
    let resized = spatial.upsample_bilinear2d([h, w], false, None, None).reshape([c, h * w]).transpose(0, 1);
    Tensor::cat(&[pos.narrow(0, 0, 1), resized], 0)
}
