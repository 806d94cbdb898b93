//! CLIP checkpoints in the layouts users have, brought to OpenAI's names (the names changedet's
//! CLIP modules use), and the architecture read off the tensor shapes, as open_clip does for
//! OpenAI weights.
//!
//! | layout | image tower | text tower | found in |
//! |---|---|---|---|
//! | OpenAI / open_clip | `visual.*` | `token_embedding.weight`, `transformer.*`, … | `RN50.pt`, open_clip `.bin`/`.safetensors` |
//! | Hugging Face | `vision_model.*`, `visual_projection.weight` | `text_model.*`, `text_projection.weight` | `openai/clip-vit-base-patch16` |
//! | ChangeCLIP | `backbone.*` | `text_encoder.*` | mmseg checkpoints (`state_dict`) |
//!
//! Hugging Face splits the attention in-projection into q/k/v and stores the projections
//! transposed; both are undone here. Hugging Face has no ResNet CLIP.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::{ResNetConfig, TextConfig, VitConfig};
use crate::{ModelError, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    OpenAi,
    HuggingFace,
    ChangeClip,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum VisionConfig {
    #[serde(rename = "resnet")]
    ResNet(ResNetConfig),
    Vit(VitConfig),
}

/// A CLIP state dict in OpenAI's names: image tower under `visual.`, text tower at the root,
/// `logit_scale`; plus what was dropped and why.
pub struct ClipStateDict {
    pub tensors: BTreeMap<String, Tensor>,
    pub layout: Layout,
    pub skipped: Vec<(String, &'static str)>,
}

fn checkpoint_error(path: &Path, message: impl Into<String>) -> ModelError {
    ModelError::Checkpoint { path: path.to_owned(), message: message.into() }
}

/// Why an entry carries no weight, or `None`.
fn unused_entry(key: &str) -> Option<&'static str> {
    if key.ends_with("num_batches_tracked") {
        Some("BatchNorm step counter, never read")
    } else if matches!(key, "input_resolution" | "context_length" | "vocab_size") {
        Some("TorchScript constant of OpenAI's archive, implied by the shapes")
    } else if key.ends_with("position_ids") {
        Some("Hugging Face index buffer (0..n)")
    } else {
        None
    }
}

impl ClipStateDict {
    /// Detects the layout of `state_dict` (read from `path`) and renames it to OpenAI's. Keys
    /// that are not CLIP's (the rest of a ChangeCLIP model) are dropped and listed in `skipped`.
    pub fn new(state_dict: BTreeMap<String, Tensor>, path: &Path) -> Result<ClipStateDict> {
        let mut skipped = Vec::new();
        let mut tensors = BTreeMap::new();
        // Distributed-training wrappers prefix every key with `module.`.
        let all_wrapped = state_dict.keys().all(|k| k.starts_with("module."));
        for (key, t) in state_dict {
            let key = if all_wrapped { key["module.".len()..].to_owned() } else { key };
            match unused_entry(&key) {
                Some(why) => skipped.push((key, why)),
                None => {
                    tensors.insert(key, t);
                }
            }
        }
        let has_prefix = |p: &str| tensors.keys().any(|k| k.starts_with(p));
        let layout = if has_prefix("vision_model.") || has_prefix("text_model.") {
            Layout::HuggingFace
        } else if has_prefix("backbone.") || has_prefix("text_encoder.") {
            Layout::ChangeClip
        } else {
            Layout::OpenAi
        };
        let tensors = match layout {
            Layout::OpenAi => tensors,
            Layout::HuggingFace => from_hugging_face(tensors, path)?,
            Layout::ChangeClip => {
                let mut renamed = BTreeMap::new();
                for (key, t) in tensors {
                    if let Some(rest) = key.strip_prefix("backbone.") {
                        renamed.insert(format!("visual.{rest}"), t);
                    } else if let Some(rest) = key.strip_prefix("text_encoder.") {
                        renamed.insert(rest.to_owned(), t);
                    } else {
                        skipped.push((key, "ChangeCLIP part outside the CLIP towers"));
                    }
                }
                renamed
            }
        };
        if !tensors.keys().any(|k| k.starts_with("visual.") || k.starts_with("transformer.")) {
            return Err(checkpoint_error(path, "no CLIP image or text tower found (expected keys like visual.conv1.weight, transformer.resblocks.0.*, vision_model.*, backbone.*)"));
        }
        Ok(ClipStateDict { tensors, layout, skipped })
    }

    fn shape<const N: usize>(&self, key: &str, path: &Path) -> Result<[i64; N]> {
        crate::import::dims(&self.tensors, key, path)
    }

    fn count(&self, pattern: impl Fn(usize) -> String) -> usize {
        (0..).take_while(|&i| self.tensors.contains_key(&pattern(i))).count()
    }

    pub fn has_vision(&self) -> bool {
        self.tensors.contains_key("visual.conv1.weight")
    }

    pub fn has_text(&self) -> bool {
        self.tensors.contains_key("token_embedding.weight")
    }

    /// The image tower's architecture from its shapes. Head counts are not stored: OpenAI's rule
    /// (head width 64) is used, except ChangeCLIP's ResNet attention pool, which has 32 heads.
    /// ChangeCLIP's ViT is recognised by its `fpn*` necks (taps 3/5/7/11 of 12 blocks, or the
    /// last four blocks otherwise, and the doubled class embedding).
    pub fn vision_config(&self, path: &Path) -> Result<VisionConfig> {
        let grid_of = |rows: i64| ((rows - 1) as f64).sqrt().round() as i64;
        if self.tensors.contains_key("visual.layer1.0.conv1.weight") {
            let layers = [1, 2, 3, 4].map(|stage| self.count(|b| format!("visual.layer{stage}.{b}.conv1.weight")) as i64);
            let [width, ..] = self.shape::<4>("visual.conv3.weight", path)?;
            let [output_dim, _] = self.shape("visual.attnpool.c_proj.weight", path)?;
            let [rows, _] = self.shape("visual.attnpool.positional_embedding", path)?;
            let positional_grid = grid_of(rows);
            let heads = if self.layout == Layout::ChangeClip { 32 } else { width * 32 / 64 };
            return Ok(VisionConfig::ResNet(ResNetConfig { layers, width, output_dim, heads, positional_grid }));
        }
        let conv = self.shape::<4>("visual.conv1.weight", path)?;
        let layers = self.count(|i| format!("visual.transformer.resblocks.{i}.ln_1.weight"));
        let multi_scale_necks = self.tensors.contains_key("visual.fpn1.1.weight");
        let out_indices = if layers == 12 { vec![3, 5, 7, 11] } else { (layers.saturating_sub(4)..layers).collect() };
        Ok(VisionConfig::Vit(VitConfig {
            patch_size: conv[2],
            width: conv[0],
            layers: layers as i64,
            heads: (conv[0] / 64).max(1),
            output_dim: self.shape::<2>("visual.proj", path)?[1],
            positional_grid: grid_of(self.shape::<2>("visual.positional_embedding", path)?[0]),
            drop_path_rate: if multi_scale_necks { 0.1 } else { 0.0 },
            out_indices,
            multi_scale_necks,
            class_embedding_twice: multi_scale_necks || self.layout == Layout::ChangeClip,
        }))
    }

    /// The text tower's architecture from its shapes (heads: width / 64, OpenAI's rule).
    pub fn text_config(&self, path: &Path) -> Result<TextConfig> {
        let [vocab_size, width] = self.shape("token_embedding.weight", path)?;
        Ok(TextConfig {
            context_length: self.shape::<2>("positional_embedding", path)?[0],
            vocab_size,
            width,
            heads: (width / 64).max(1),
            layers: self.count(|i| format!("transformer.resblocks.{i}.ln_1.weight")) as i64,
            embed_dim: self.shape::<2>("text_projection", path)?[1],
        })
    }

    /// The image tower's entries (`vision`) or the text tower's (all others but `logit_scale`).
    pub fn tower(&self, vision: bool) -> BTreeMap<String, Tensor> {
        self.tensors
            .iter()
            .filter(|(k, _)| k.starts_with("visual.") == vision && *k != "logit_scale")
            .map(|(k, t)| (k.clone(), t.shallow_clone()))
            .collect()
    }
}

/// A key pattern for errors (`{}` = q, k or v) and the pieces of one packed projection seen so far.
type PendingQkv = (String, [Option<Tensor>; 3]);

/// Hugging Face `CLIPModel` names → OpenAI names.
fn from_hugging_face(tensors: BTreeMap<String, Tensor>, path: &Path) -> Result<BTreeMap<String, Tensor>> {
    let mut out = BTreeMap::new();
    // q/k/v pieces wait here until all three are present, then become OpenAI's packed projection.
    let mut pending_qkv: BTreeMap<(String, &'static str), PendingQkv> = BTreeMap::new();
    for (key, t) in tensors {
        match hugging_face_target(&key, path)? {
            HuggingFaceTarget::Same(name) => {
                out.insert(name, t);
            }
            HuggingFaceTarget::Transposed(name) => {
                out.insert(name, t.transpose(0, 1).contiguous());
            }
            HuggingFaceTarget::Qkv { block, kind, slot, pattern } => {
                let (_, parts) = pending_qkv.entry((block, kind)).or_insert_with(|| (pattern, Default::default()));
                parts[slot] = Some(t);
            }
        }
    }
    for ((block, kind), (hf_pattern, parts)) in pending_qkv {
        let parts: Vec<Tensor> = parts
            .into_iter()
            .zip(["q", "k", "v"])
            .map(|(p, name)| p.ok_or_else(|| ModelError::MissingKey { path: path.to_owned(), key: hf_pattern.replace("{}", name) }))
            .collect::<Result<_>>()?;
        out.insert(format!("{block}.attn.{kind}"), Tensor::cat(&parts, 0));
    }
    Ok(out)
}

/// Where a Hugging Face CLIPModel entry goes in OpenAI's layout.
enum HuggingFaceTarget {
    Same(String),
    /// Linear projections: Hugging Face stores `[out, in]`, OpenAI `[in, out]`.
    Transposed(String),
    /// One of q, k, v (`slot` 0, 1, 2) of a block's packed `in_proj_weight`/`in_proj_bias`;
    /// `pattern` names the Hugging Face keys, `{}` for q, k or v.
    Qkv { block: String, kind: &'static str, slot: usize, pattern: String },
}

fn hugging_face_target(key: &str, path: &Path) -> Result<HuggingFaceTarget> {
    let foreign = || checkpoint_error(path, format!("key '{key}' is not part of a Hugging Face CLIPModel"));
    let renamed = match key {
        "logit_scale" => Some("logit_scale"),
        "vision_model.embeddings.class_embedding" => Some("visual.class_embedding"),
        "vision_model.embeddings.patch_embedding.weight" => Some("visual.conv1.weight"),
        "vision_model.embeddings.position_embedding.weight" => Some("visual.positional_embedding"),
        "text_model.embeddings.token_embedding.weight" => Some("token_embedding.weight"),
        "text_model.embeddings.position_embedding.weight" => Some("positional_embedding"),
        _ => None,
    };
    if let Some(name) = renamed {
        return Ok(HuggingFaceTarget::Same(name.to_owned()));
    }
    match key {
        "visual_projection.weight" => return Ok(HuggingFaceTarget::Transposed("visual.proj".into())),
        "text_projection.weight" => return Ok(HuggingFaceTarget::Transposed("text_projection".into())),
        _ => {}
    }
    let (tower, rest) = match (key.strip_prefix("vision_model."), key.strip_prefix("text_model.")) {
        (Some(rest), _) => ("visual.", rest),
        (_, Some(rest)) => ("", rest),
        _ => return Err(foreign()),
    };
    let norm = match rest.rsplit_once('.') {
        Some(("pre_layrnorm", p)) => Some(format!("{tower}ln_pre.{p}")),
        Some(("post_layernorm", p)) => Some(format!("{tower}ln_post.{p}")),
        Some(("final_layer_norm", p)) => Some(format!("ln_final.{p}")),
        _ => None,
    };
    if let Some(name) = norm {
        return Ok(HuggingFaceTarget::Same(name));
    }
    let layer_rest = rest.strip_prefix("encoder.layers.").ok_or_else(foreign)?;
    let (index, inner) = layer_rest.split_once('.').ok_or_else(|| checkpoint_error(path, format!("malformed key '{key}'")))?;
    let block = format!("{tower}transformer.resblocks.{index}");
    if let Some(slot) = ["q", "k", "v"].iter().position(|p| inner.strip_prefix(&format!("self_attn.{p}_proj.")).is_some_and(|s| s == "weight" || s == "bias")) {
        let (kind, suffix) = if inner.ends_with("weight") { ("in_proj_weight", "weight") } else { ("in_proj_bias", "bias") };
        let hf_layer = &key[..key.len() - inner.len()];
        return Ok(HuggingFaceTarget::Qkv { block, kind, slot, pattern: format!("{hf_layer}self_attn.{{}}_proj.{suffix}") });
    }
    let mapped = match inner {
        "self_attn.out_proj.weight" => "attn.out_proj.weight",
        "self_attn.out_proj.bias" => "attn.out_proj.bias",
        "layer_norm1.weight" => "ln_1.weight",
        "layer_norm1.bias" => "ln_1.bias",
        "layer_norm2.weight" => "ln_2.weight",
        "layer_norm2.bias" => "ln_2.bias",
        "mlp.fc1.weight" => "mlp.c_fc.weight",
        "mlp.fc1.bias" => "mlp.c_fc.bias",
        "mlp.fc2.weight" => "mlp.c_proj.weight",
        "mlp.fc2.bias" => "mlp.c_proj.bias",
        _ => return Err(foreign()),
    };
    Ok(HuggingFaceTarget::Same(format!("{block}.{mapped}")))
}
