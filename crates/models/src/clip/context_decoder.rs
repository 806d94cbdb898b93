//! DenseCLIP's context decoder: text embeddings attend to the image's visual tokens and come out
//! as a residual update of the text (ChangeCLIP adds it scaled by a learned `gamma`).

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::Tensor;

use super::transformer::{attention, layer_norm};
use crate::torch_init;

/// DenseCLIP's `_init_weights`: every linear layer trunc_normal(0.02) with bias 0.
fn linear(vs: nn::Path, c_in: i64, c_out: i64, bias: bool) -> nn::Linear {
    torch_init::linear_normal(vs, c_in, c_out, bias, 0.02)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContextDecoderConfig {
    pub width: i64,
    pub heads: i64,
    pub layers: i64,
    /// Width of the text and visual embeddings it reads and writes.
    pub visual_dim: i64,
    pub dropout: f64,
}

impl Default for ContextDecoderConfig {
    /// ChangeCLIP RN50's (3 layers instead of DenseCLIP's 6).
    fn default() -> Self {
        Self { width: 256, heads: 4, layers: 3, visual_dim: 1024, dropout: 0.1 }
    }
}

/// Attention with bias-free q/k/v projections and a biased output projection.
#[derive(Debug)]
struct Attention {
    q_proj: nn::Linear,
    k_proj: nn::Linear,
    v_proj: nn::Linear,
    proj: nn::Linear,
    heads: i64,
}

impl Attention {
    fn new(vs: nn::Path, width: i64, heads: i64) -> Self {
        Self {
            q_proj: linear(&vs / "q_proj", width, width, false),
            k_proj: linear(&vs / "k_proj", width, width, false),
            v_proj: linear(&vs / "v_proj", width, width, false),
            proj: linear(&vs / "proj", width, width, true),
            heads,
        }
    }

    fn forward(&self, q: &Tensor, kv: &Tensor) -> Tensor {
        let out = attention(&self.q_proj.forward(q), &self.k_proj.forward(kv), &self.v_proj.forward(kv), self.heads, false);
        self.proj.forward(&out)
    }
}

#[derive(Debug)]
struct DecoderLayer {
    self_attn: Attention,
    cross_attn: Attention,
    norm1: nn::LayerNorm,
    norm2: nn::LayerNorm,
    norm3: nn::LayerNorm,
    mlp_in: nn::Linear,
    mlp_out: nn::Linear,
}

impl DecoderLayer {
    fn new(vs: nn::Path, width: i64, heads: i64) -> Self {
        Self {
            self_attn: Attention::new(&vs / "self_attn", width, heads),
            cross_attn: Attention::new(&vs / "cross_attn", width, heads),
            norm1: layer_norm(&vs / "norm1", width),
            norm2: layer_norm(&vs / "norm2", width),
            norm3: layer_norm(&vs / "norm3", width),
            mlp_in: linear(&vs / "mlp" / 0, width, 4 * width, true),
            mlp_out: linear(&vs / "mlp" / 3, 4 * width, width, true),
        }
    }

    /// Pre-norm self-attention, cross-attention to `memory` (not re-normalised), MLP.
    fn forward_t(&self, x: &Tensor, memory: &Tensor, dropout: f64, train: bool) -> Tensor {
        let normed = self.norm1.forward(x);
        let x = x + self.self_attn.forward(&normed, &normed).dropout(dropout, train);
        let x = &x + self.cross_attn.forward(&self.norm2.forward(&x), memory).dropout(dropout, train);
        let hidden = self.mlp_in.forward(&self.norm3.forward(&x)).gelu("none").dropout(dropout, train);
        &x + self.mlp_out.forward(&hidden).dropout(dropout, train)
    }
}

#[derive(Debug)]
pub struct ContextDecoder {
    memory_norm_in: nn::LayerNorm,
    memory_linear: nn::Linear,
    memory_norm_out: nn::LayerNorm,
    text_norm: nn::LayerNorm,
    text_linear: nn::Linear,
    layers: Vec<DecoderLayer>,
    out_norm: nn::LayerNorm,
    out_linear: nn::Linear,
    dropout: f64,
}

impl ContextDecoder {
    pub fn new(vs: nn::Path, config: &ContextDecoderConfig) -> Self {
        let ContextDecoderConfig { width, heads, layers, visual_dim, dropout } = *config;
        let decoder = &vs / "decoder";
        Self {
            memory_norm_in: layer_norm(&vs / "memory_proj" / 0, visual_dim),
            memory_linear: linear(&vs / "memory_proj" / 1, visual_dim, width, true),
            memory_norm_out: layer_norm(&vs / "memory_proj" / 2, width),
            text_norm: layer_norm(&vs / "text_proj" / 0, visual_dim),
            text_linear: linear(&vs / "text_proj" / 1, visual_dim, width, true),
            layers: (0..layers).map(|i| DecoderLayer::new(&decoder / i, width, heads)).collect(),
            out_norm: layer_norm(&vs / "out_proj" / 0, width),
            out_linear: linear(&vs / "out_proj" / 1, width, visual_dim, true),
            dropout,
        }
    }

    /// `text` `[n, k, d]`, `visual` tokens `[n, t, d]` (global token first) → text update `[n, k, d]`.
    pub fn forward_t(&self, text: &Tensor, visual: &Tensor, train: bool) -> Tensor {
        let memory = self.memory_norm_out.forward(&self.memory_linear.forward(&self.memory_norm_in.forward(visual))); // [n, t, w]
        let mut x = self.text_linear.forward(&self.text_norm.forward(text)); // [n, k, w]
        for layer in &self.layers {
            x = layer.forward_t(&x, &memory, self.dropout, train);
        }
        self.out_linear.forward(&self.out_norm.forward(&x))
    }
}
