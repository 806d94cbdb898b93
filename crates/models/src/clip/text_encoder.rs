//! CLIP's text tower, used two ways: plain CLIP (77 tokens, pooled at the end-of-text token) and
//! ChangeCLIP's `CLIPTextContextEncoder`, which slips learned context vectors between the start
//! token and the prompt (DenseCLIP/CoOp style).

use serde::{Deserialize, Serialize};
use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::transformer::{Transformer, layer_norm};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextConfig {
    /// Positions of `positional_embedding` (prompt tokens + learned context tokens).
    pub context_length: i64,
    pub vocab_size: i64,
    pub width: i64,
    pub heads: i64,
    pub layers: i64,
    /// Width of the joint image-text space (`text_projection`'s columns).
    pub embed_dim: i64,
}

impl Default for TextConfig {
    /// RN50's text tower (ViT-B/16 differs only in `embed_dim` 512).
    fn default() -> Self {
        Self { context_length: 77, vocab_size: 49408, width: 512, heads: 8, layers: 12, embed_dim: 1024 }
    }
}

/// Variables as in OpenAI's state dict: `token_embedding.weight`, `positional_embedding`,
/// `transformer.resblocks.*`, `ln_final.*`, `text_projection`.
#[derive(Debug)]
pub struct TextEncoder {
    token_embedding: nn::Embedding,
    positional_embedding: Tensor,
    transformer: Transformer,
    ln_final: nn::LayerNorm,
    text_projection: Tensor,
    pub config: TextConfig,
}

impl TextEncoder {
    pub fn new(vs: nn::Path, config: &TextConfig) -> Self {
        let TextConfig { context_length, vocab_size, width, heads, layers, embed_dim } = *config;
        Self {
            token_embedding: nn::embedding(&vs / "token_embedding", vocab_size, width, Default::default()),
            positional_embedding: vs.var("positional_embedding", &[context_length, width], nn::Init::Randn { mean: 0.0, stdev: 0.01 }),
            transformer: Transformer::new(&vs / "transformer", width, layers, heads, 0.0, true),
            ln_final: layer_norm(&vs / "ln_final", width),
            text_projection: vs.var("text_projection", &[width, embed_dim], nn::Init::Randn { mean: 0.0, stdev: (width as f64).powf(-0.5) }),
            config: config.clone(),
        }
    }

    /// Token rows `[n, context_length]` → text embeddings `[n, embed_dim]` (not normalised).
    pub fn forward_t(&self, tokens: &Tensor, train: bool) -> Tensor {
        let x = self.token_embedding.forward(tokens) + &self.positional_embedding; // [n, 77, w]
        let hidden = self.ln_final.forward(&self.transformer.forward_t(&x, train));
        self.pool(&hidden, &tokens.argmax(-1, false))
    }

    /// ChangeCLIP's prompt encoder: `tokens` `[n, k, l]` with `l + m = context_length`, learned
    /// `context` `[n or 1, 1, m, width]` shared by the k prompts → `[n, k, embed_dim]`.
    pub fn forward_with_context_t(&self, tokens: &Tensor, context: &Tensor, train: bool) -> Tensor {
        let hidden = self.hidden_with_context_t(tokens, context, train);
        let (n, k, l) = tokens.size3().expect("[n, k, l] prompts");
        let m = context.size()[2];
        let end_of_text = tokens.reshape([n * k, l]).argmax(-1, false) + m;
        self.pool(&hidden, &end_of_text).reshape([n, k, -1])
    }

    /// Hidden states after `ln_final` for [`Self::forward_with_context_t`]: `[n·k, context_length, width]`,
    /// the sequence being `[SOT, context₁..m, prompt tokens 1..l−1]`.
    pub fn hidden_with_context_t(&self, tokens: &Tensor, context: &Tensor, train: bool) -> Tensor {
        let (n, k, l) = tokens.size3().expect("[n, k, l] prompts");
        let (_, _, m, width) = context.size4().expect("[n, 1, m, width] context");
        let embedded = self.token_embedding.forward(tokens); // [n, k, l, w]
        let context = context.expand([n, k, m, width], false);
        let sequence = Tensor::cat(&[embedded.narrow(2, 0, 1), context, embedded.narrow(2, 1, l - 1)], 2).reshape([n * k, l + m, width]);
        let x = sequence + &self.positional_embedding;
        self.ln_final.forward(&self.transformer.forward_t(&x, train))
    }

    /// Hidden state at `positions` (one per row) projected to the joint space.
    fn pool(&self, hidden: &Tensor, positions: &Tensor) -> Tensor {
        let rows = Tensor::arange(hidden.size()[0], (Kind::Int64, hidden.device()));
        hidden.index(&[Some(rows), Some(positions.shallow_clone())]).matmul(&self.text_projection)
    }
}
