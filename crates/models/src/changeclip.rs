//! ChangeCLIP (Dong et al., ISPRS 2024; `dyzy41/ChangeCLIP`, `segmentors/ChangeCLIPCD.py`):
//! a weight-shared CLIP image encoder on both dates, per-image text prompts through CLIP's text
//! encoder with learned context, DenseCLIP's context decoder, pixel-text score maps joined to one
//! pyramid level, an FPN over the concatenated dates, differential feature compensation (DFC),
//! and the text-guided Swin decoder. Variable names are the mmseg checkpoint's.

use serde::{Deserialize, Serialize};
use tch::{Device, Tensor};
use tch::nn;

use changedet_data::{Normalization, Preset};

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::clip::weights::{ClipStateDict, VisionConfig};
use crate::clip::{ContextDecoder, ContextDecoderConfig, ImageEncoder, ImageFeatures, ResNetConfig, TextConfig, TextEncoder, Tokenizer, VitConfig};
use crate::decoders::fpn_neck::FpnNeck;
use crate::import::dims;
use crate::decoders::swin_text::{SwinTextDecoder, SwinTextOutput};
use crate::recipe::{BestMetric, LossKind, OptimizerKind, Schedule};
use crate::registry::elements;
use crate::torch_init::{self, ConvInit};
use crate::{ChangeModel, ChangeOutput, ModelCard, ModelConfig, ModelError, Recipe, Result};

/// The prompt every image gets for its background.
pub const BACKGROUND_PROMPT: &str = "remote sensing image background objects";
/// The foreground prompt, followed by `, ` and the image's class names.
pub const FOREGROUND_PROMPT: &str = "remote sensing image foreground objects";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub vision: VisionConfig,
    pub text: TextConfig,
    pub context_decoder: ContextDecoderConfig,
    /// Tokens of a prompt; the text encoder's remaining positions are learned context.
    pub prompt_length: i64,
    /// Pyramid level that gets the two score maps (RN50: 3, ViT: 2).
    pub score_concat_index: usize,
    /// Width of the FPN, DFC and decoder.
    pub width: i64,
    /// At inference the reference builds the after image's prompt from the *before* image's
    /// class list (training uses the after list). `true` reproduces the published numbers.
    pub after_prompt_from_before_at_inference: bool,
    pub normalization: Normalization,
}

impl Default for Config {
    /// The RN50 variant (`configs/0cd_ce/changeclip_*.py`).
    fn default() -> Self {
        Self {
            vision: VisionConfig::ResNet(ResNetConfig::default()),
            text: TextConfig::default(),
            context_decoder: ContextDecoderConfig::default(),
            prompt_length: 64,
            score_concat_index: 3,
            width: 256,
            after_prompt_from_before_at_inference: true,
            normalization: Normalization::IMAGENET,
        }
    }
}

impl Config {
    /// The ViT-B/16 variant (`changeclip_*_vit.py`).
    pub fn vit_b16() -> Self {
        Self {
            vision: VisionConfig::Vit(VitConfig::default()),
            text: TextConfig { embed_dim: 512, ..TextConfig::default() },
            context_decoder: ContextDecoderConfig { visual_dim: 512, ..ContextDecoderConfig::default() },
            score_concat_index: 2,
            ..Self::default()
        }
    }

    /// Channels of one date's pyramid levels, score maps included.
    pub fn level_channels(&self) -> Vec<i64> {
        let mut channels = image_level_channels(&self.vision);
        channels[self.score_concat_index] += 2;
        channels
    }
}

/// Channels of the image encoder's four pyramid levels.
fn image_level_channels(vision: &VisionConfig) -> Vec<i64> {
    match vision {
        VisionConfig::ResNet(c) => c.stage_channels().to_vec(),
        VisionConfig::Vit(c) => vec![c.width; 4],
    }
}

/// Squeeze-and-excitation gate over `[P·w, minus, P]`, then a 1×1 conv to the decoder width
/// (mmseg `SELayer_v2`; HSigmoid is `clamp((x + 3)/6, 0, 1)`).
#[derive(Debug)]
struct ChannelAttention {
    squeeze: nn::Conv2D,
    excite: nn::Conv2D,
    out: nn::Conv2D,
}

impl ChannelAttention {
    fn new(vs: nn::Path, channels: i64, out_channels: i64) -> Self {
        let hidden = make_divisible(channels / 16, 8);
        // mmcv ConvModules: Kaiming-normal over fan_out.
        let conv = |p: nn::Path, i, o| torch_init::conv2d_with(&p / "conv", i, o, 1, Default::default(), ConvInit::KaimingFanOut);
        Self { squeeze: conv(&vs / "conv1", channels, hidden), excite: conv(&vs / "conv2", hidden, channels), out: conv(&vs / "conv_last", channels, out_channels) }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let gate = x.adaptive_avg_pool2d([1, 1]).apply(&self.squeeze).relu().apply(&self.excite);
        let gate = ((gate + 3.0) / 6.0).clamp(0.0, 1.0);
        (x * gate).apply(&self.out).relu()
    }
}

/// One date's features after the text branch.
pub struct DateFeatures {
    pub image: ImageFeatures,
    /// Text encoder output `[n, 2, e]`, context decoder update, and `raw + γ·update`.
    pub text_raw: Tensor,
    pub text_diff: Tensor,
    pub text: Tensor,
    /// Cosine of the L2-normalised dense embeddings and texts, `[n, 2, h, w]`.
    pub score_map: Tensor,
    /// The pyramid with the score maps joined at `score_concat_index`.
    pub levels: Vec<Tensor>,
}

/// Every intermediate of a forward pass, in the order of the paper's figure.
pub struct ChangeClipForward {
    pub before: DateFeatures,
    pub after: DateFeatures,
    /// FPN outputs over the concatenated dates.
    pub fpn: Vec<Tensor>,
    /// DFC: `sigmoid(1 − cos(A, B))`, `ReLU(conv|A − B|)`, and the channel-attention outputs.
    pub dfc_weights: Vec<Tensor>,
    pub minus: Vec<Tensor>,
    pub dfc: Vec<Tensor>,
    pub decoder: SwinTextOutput,
    /// Change logits `[n, 2, h, w]` at input resolution.
    pub logits: Tensor,
}

#[derive(Debug)]
pub struct ChangeClip {
    backbone: ImageEncoder,
    text_encoder: TextEncoder,
    context_decoder: ContextDecoder,
    contexts: Tensor,
    gamma: Tensor,
    minus_conv: Vec<nn::Conv2D>,
    channel_att: Vec<ChannelAttention>,
    neck: FpnNeck,
    decode_head: SwinTextDecoder,
    /// CLIP's tokenizer for the prompts (the shared default vocabulary).
    tokenizer: Arc<Tokenizer>,
    /// Text embeddings `[2, e]` of prompt pairs already encoded (their tokens as the key), kept
    /// once the weights are frozen for inference: a scene's tiles and a dataset's pairs without
    /// class lists all share one prompt pair. None until then (training moves the weights).
    text_cache: Mutex<Option<Vec<EncodedPrompts>>>,
    pub config: Config,
}

/// A prompt pair's tokens and their text embeddings `[2, e]`.
type EncodedPrompts = (Vec<i64>, Tensor);

/// Prompt pairs whose embeddings stay cached (the oldest go first).
const TEXT_CACHE_ENTRIES: usize = 64;

impl ChangeClip {
    /// Refuses to build without CLIP's vocabulary, which every forward pass needs for its prompts.
    pub fn new(vs: &nn::Path, config: &Config) -> Result<Self> {
        let tokenizer = Tokenizer::shared()?;
        let levels = config.level_channels();
        let context_tokens = config.text.context_length - config.prompt_length;
        let text_dim = config.text.embed_dim;
        Ok(Self {
            backbone: ImageEncoder::new(vs / "backbone", &config.vision),
            text_encoder: TextEncoder::new(vs / "text_encoder", &config.text),
            context_decoder: ContextDecoder::new(vs / "context_decoder", &config.context_decoder),
            contexts: torch_init::truncated_normal(vs, "contexts2", &[1, 1, context_tokens, config.text.width]),
            gamma: vs.var("gamma", &[text_dim], nn::Init::Const(1e-4)),
            minus_conv: levels
                .iter()
                .enumerate()
                .map(|(i, &c)| torch_init::conv2d_with(vs / "minus_conv" / i / "conv", c, config.width, 1, Default::default(), ConvInit::KaimingFanOut))
                .collect(),
            channel_att: (0..4).map(|i| ChannelAttention::new(vs / "channel_att" / i, 3 * config.width, config.width)).collect(),
            neck: FpnNeck::new(vs / "neck", &levels.iter().map(|c| 2 * c).collect::<Vec<_>>(), config.width),
            decode_head: SwinTextDecoder::new(vs / "decode_head", config.width, text_dim, 2),
            tokenizer,
            text_cache: Mutex::new(None),
            config: config.clone(),
        })
    }

    /// Token rows `[n, 2, prompt_length]` of each image's [background, foreground] prompts.
    pub fn prompt_tokens(&self, tokenizer: &Tokenizer, class_lists: &[Vec<String>]) -> Tensor {
        let prompts: Vec<String> = class_lists.iter().flat_map(|classes| [BACKGROUND_PROMPT.to_owned(), foreground_prompt(classes)]).collect();
        tokenizer.tokenize_batch(&prompts, self.config.prompt_length as usize).view([class_lists.len() as i64, 2, -1])
    }

    /// Text embeddings `[n, 2, e]` of each date's prompt tokens `[n, 2, prompt_length]`. They
    /// depend on the tokens alone (the learned context is shared and the text tower has no
    /// dropout), so the tower runs once per distinct prompt pair of either date and any image
    /// (at inference both dates share their prompts, `after_prompt_from_before_at_inference`),
    /// and, once the weights are frozen, not again for a pair it has seen.
    fn prompt_embeddings_t(&self, tokens: [&Tensor; 2], device: Device, train: bool) -> [Tensor; 2] {
        let all = Tensor::cat(&[tokens[0], tokens[1]], 0).to_device(Device::Cpu); // [2n, 2, l]
        let flat = Vec::<i64>::try_from(all.flatten(0, -1)).expect("int64 tokens");
        let rows: Vec<&[i64]> = flat.chunks((flat.len() / all.size()[0].max(1) as usize).max(1)).collect();
        let mut cache = self.text_cache.lock().unwrap_or_else(|e| e.into_inner());
        let mut cache = cache.as_mut().filter(|_| !train);
        let mut known: Vec<(&[i64], Tensor)> = Vec::new();
        let mut to_encode: Vec<&[i64]> = Vec::new();
        for &row in &rows {
            if known.iter().any(|(r, _)| *r == row) || to_encode.contains(&row) {
                continue;
            }
            match cache.as_ref().and_then(|c| c.iter().find(|(r, _)| r.as_slice() == row)) {
                Some((_, text)) => known.push((row, text.shallow_clone())),
                None => to_encode.push(row),
            }
        }
        if !to_encode.is_empty() {
            let l = rows[0].len() as i64 / 2;
            let unique_tokens = Tensor::from_slice(&to_encode.concat()).view([to_encode.len() as i64, 2, l]).to_device(device);
            let contexts = self.contexts.expand([to_encode.len() as i64, 1, -1, -1], false);
            let text = self.text_encoder.forward_with_context_t(&unique_tokens, &contexts, train); // [u, 2, e]
            for (j, &row) in to_encode.iter().enumerate() {
                let embedding = text.get(j as i64);
                if let Some(cache) = cache.as_mut() {
                    if cache.len() == TEXT_CACHE_ENTRIES {
                        drop(cache.remove(0));
                    }
                    cache.push((row.to_vec(), embedding.detach()));
                }
                known.push((row, embedding));
            }
        }
        let per_row: Vec<&Tensor> = rows.iter().map(|row| &known.iter().find(|(r, _)| r == row).expect("encoded above").1).collect();
        let per_row = Tensor::stack(&per_row, 0); // [2n, 2, e]
        let n = tokens[0].size()[0];
        [per_row.narrow(0, 0, n), per_row.narrow(0, n, n)]
    }

    /// Image features, text embeddings refined by the image, score maps (`after_extract_feat_clip`).
    fn date_features_t(&self, image: &Tensor, text_raw: Tensor, train: bool) -> DateFeatures {
        let features = self.backbone.forward_t(image, train);
        let (n, e, h, w) = features.dense.size4().expect("[n, e, h, w]");
        let visual_context = Tensor::cat(&[features.global.unsqueeze(1), features.dense.reshape([n, e, h * w]).transpose(1, 2)], 1); // [n, 1 + hw, e]
        let text_diff = self.context_decoder.forward_t(&text_raw, &visual_context, train);
        let text = &text_raw + &self.gamma * &text_diff;
        let score_map = Tensor::einsum("bchw,bkc->bkhw", &[l2_normalise(&features.dense, 1), l2_normalise(&text, 2)], None::<i64>); // [n, 2, h, w]
        let mut levels: Vec<Tensor> = features.levels.iter().map(Tensor::shallow_clone).collect();
        let i = self.config.score_concat_index;
        levels[i] = Tensor::cat(&[&levels[i], &score_map], 1);
        DateFeatures { image: features, text_raw, text_diff, text, score_map, levels }
    }

    /// The whole network on normalised images `[n, 3, h, w]` (multiples of 32) and each date's
    /// prompt tokens `[n, 2, prompt_length]`.
    pub fn forward_detailed_t(&self, before: &Tensor, after: &Tensor, tokens_before: &Tensor, tokens_after: &Tensor, train: bool) -> ChangeClipForward {
        let [text_before, text_after] = self.prompt_embeddings_t([tokens_before, tokens_after], before.device(), train); // [n, 2, e] each
        let a = self.date_features_t(before, text_before, train);
        let b = self.date_features_t(after, text_after, train);
        let joined: Vec<Tensor> = a.levels.iter().zip(&b.levels).map(|(x, y)| Tensor::cat(&[x, y], 1)).collect();
        let fpn = self.neck.forward(&joined); // 4 × [n, 256, h/4 … h/32]
        let mut dfc_weights = Vec::with_capacity(4);
        let mut minus = Vec::with_capacity(4);
        let mut dfc = Vec::with_capacity(4);
        for (i, p) in fpn.iter().enumerate() {
            let (x, y) = (&a.levels[i], &b.levels[i]);
            let weight = (Tensor::cosine_similarity(x, y, 1, 1e-8).neg() + 1.0).sigmoid().unsqueeze(1); // [n, 1, h, w]
            let difference = (x - y).abs().apply(&self.minus_conv[i]).relu(); // [n, 256, h, w]
            dfc.push(self.channel_att[i].forward(&Tensor::cat(&[p * &weight, difference.shallow_clone(), p.shallow_clone()], 1)));
            dfc_weights.push(weight);
            minus.push(difference);
        }
        let decoder = self.decode_head.forward_t(&dfc, &a.text, &b.text, train);
        let (h, w) = (before.size()[2], before.size()[3]);
        let logits = decoder.logits.upsample_bilinear2d([h, w], false, None, None);
        ChangeClipForward { before: a, after: b, fpn, dfc_weights, minus, dfc, decoder, logits }
    }
}

impl ChangeModel for ChangeClip {
    /// With no class lists the prompts are the bare prefixes, as the reference does when an
    /// image has no class-list entry.
    fn forward_t(&self, before: &Tensor, after: &Tensor, train: bool) -> ChangeOutput {
        self.forward_with_classes_t(before, after, &[], train)
    }

    fn forward_with_classes_t(&self, before: &Tensor, after: &Tensor, classes: &[[Vec<String>; 2]], train: bool) -> ChangeOutput {
        let n = before.size()[0] as usize;
        let tokenizer = &self.tokenizer;
        let none = vec![Default::default(); n];
        let classes = if classes.is_empty() { &none[..] } else { classes };
        assert_eq!(classes.len(), n, "one pair of class lists per image pair");
        let before_lists: Vec<Vec<String>> = classes.iter().map(|[b, _]| b.clone()).collect();
        let after_lists: Vec<Vec<String>> = if !train && self.config.after_prompt_from_before_at_inference {
            before_lists.clone()
        } else {
            classes.iter().map(|[_, a]| a.clone()).collect()
        };
        let tokens_before = self.prompt_tokens(tokenizer, &before_lists);
        let tokens_after = self.prompt_tokens(tokenizer, &after_lists);
        let logits = self.forward_detailed_t(before, after, &tokens_before, &tokens_after, train).logits;
        ChangeOutput { logits, semantic: None }
    }

    /// Four pyramid levels down to stride 32, each decoder stage doubling the previous.
    fn size_multiple(&self) -> usize {
        32
    }

    fn freeze_for_inference(&self) {
        self.backbone.freeze_for_inference();
        let mut cache = self.text_cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get_or_insert_with(Vec::new);
    }
}

/// Starts a freshly built ChangeCLIP (variables in `vs`) from CLIP weights, as the reference's
/// `init_weights` does from OpenAI's `RN50.pt`/`ViT-B-16.pt`: the image tower becomes
/// `backbone.*` (its positional grid resized bilinearly, once, to the configured one, e.g. RN50's
/// 7×7 → 16×16) and the text tower `text_encoder.*`; everything else keeps its initialisation.
/// Any layout [`ClipStateDict`] reads works. Every tower variable but the ViT's new necks must be
/// present with its shape. Returns the number of tensors copied.
pub fn load_clip_towers(vs: &mut nn::VarStore, path: &Path) -> Result<usize> {
    let state = ClipStateDict::new(crate::import::read_state_dict(path)?, path)?;
    let variables = vs.variables();
    let mut copies = Vec::new();
    for (key, tensor) in state.tensors {
        let target = match key.strip_prefix("visual.") {
            Some(rest) => format!("backbone.{rest}"),
            None if key == "logit_scale" => continue,
            None => format!("text_encoder.{key}"),
        };
        let Some(variable) = variables.get(&target) else {
            return Err(ModelError::UnexpectedKey { path: path.to_owned(), key, model: "ChangeCLIP's CLIP towers".into() });
        };
        let expected = variable.size();
        let tensor = if target.ends_with("positional_embedding") && tensor.dim() == 2 && target.starts_with("backbone.") && tensor.size() != expected {
            let grid = ((expected[0] - 1) as f64).sqrt().round() as i64;
            crate::clip::transformer::resize_positional_grid(&tensor.to_kind(tch::Kind::Float), grid, grid)
        } else if target == "text_encoder.positional_embedding" && tensor.size().first().is_some_and(|&rows| rows > expected[0]) {
            tensor.narrow(0, 0, expected[0])
        } else {
            tensor
        };
        if tensor.size() != expected {
            return Err(ModelError::ShapeMismatch { path: path.to_owned(), key, expected, found: tensor.size() });
        }
        copies.push((target, tensor));
    }
    let is_tower = |k: &str| (k.starts_with("backbone.") && !k.starts_with("backbone.fpn")) || k.starts_with("text_encoder.");
    let mut missing: Vec<&String> = variables.keys().filter(|k| is_tower(k) && !copies.iter().any(|(t, _)| t == *k)).collect();
    missing.sort();
    if let Some(key) = missing.first() {
        // Named as the CLIP checkpoint (OpenAI layout) would name it.
        let source = key.strip_prefix("backbone.").map(|rest| format!("visual.{rest}")).unwrap_or_else(|| key["text_encoder.".len()..].to_owned());
        return Err(ModelError::MissingKey { path: path.to_owned(), key: source });
    }
    tch::no_grad(|| copies.iter().try_for_each(|(k, t)| variables[k].shallow_clone().f_copy_(t)))?;
    Ok(copies.len())
}

impl Config {
    /// The configuration of a ChangeCLIP state dict (mmseg names), read off its tensor shapes:
    /// the CLIP towers as [`ClipStateDict`] reads them, the context decoder's width and depth,
    /// the number of learned context tokens, and the level the score maps join. Head counts
    /// are not stored: CLIP's rule (64-wide heads) and the reference's 4 decoder heads apply.
    pub fn from_state_dict(tensors: &BTreeMap<String, Tensor>, path: &Path, vit: bool) -> Result<Config> {
        let clip = ClipStateDict::new(tensors.iter().map(|(k, t)| (k.clone(), t.shallow_clone())).collect(), path)?;
        let vision = clip.vision_config(path)?;
        if matches!(vision, VisionConfig::Vit(_)) != vit {
            let found = if vit { "a ResNet" } else { "a ViT" };
            return Err(ModelError::Checkpoint { path: path.to_owned(), message: format!("backbone.* holds {found} image encoder; use the other changeclip variant") });
        }
        let text = clip.text_config(path)?;
        let text_proj: [i64; 2] = dims(tensors, "context_decoder.text_proj.1.weight", path)?;
        let layers = (0..).take_while(|i| tensors.contains_key(&format!("context_decoder.decoder.{i}.norm1.weight"))).count() as i64;
        let base = if vit { Config::vit_b16() } else { Config::default() };
        let mut config = Config {
            context_decoder: ContextDecoderConfig { width: text_proj[0], visual_dim: text_proj[1], layers, ..base.context_decoder.clone() },
            prompt_length: text.context_length - dims::<4>(tensors, "contexts2", path)?[2],
            width: dims::<4>(tensors, "neck.fpn_convs.0.conv.weight", path)?[0],
            vision,
            text,
            ..base
        };
        let plain = image_level_channels(&config.vision);
        let minus: Vec<i64> = (0..4).map(|i| dims::<4>(tensors, &format!("minus_conv.{i}.conv.weight"), path).map(|s| s[1])).collect::<Result<_>>()?;
        config.score_concat_index = (0..4).find(|&i| minus[i] == plain[i] + 2).ok_or_else(|| ModelError::Checkpoint {
            path: path.to_owned(),
            message: format!("minus_conv input channels {minus:?} do not fit the backbone's levels {plain:?} plus 2 score maps"),
        })?;
        Ok(config)
    }
}

impl Config {
    /// Refuses sizes that build no network or one far beyond CLIP's largest (a checkpoint's
    /// configuration comes from a file), before anything is allocated.
    fn check_sizes(&self) -> std::result::Result<(), String> {
        // The Swin branch's group norm takes 32 groups of half the width.
        if !(64..=4096).contains(&self.width) || self.width % 64 != 0 {
            return Err(format!("width {} must be a multiple of 64 from 64 to 4096", self.width));
        }
        let (t, c) = (&self.text, &self.context_decoder);
        let mut sizes = vec![
            ("text.width", t.width, 4096),
            ("text.heads", t.heads, 64),
            ("text.layers", t.layers, 64),
            ("text.embed_dim", t.embed_dim, 4096),
            ("text.context_length", t.context_length, 1024),
            ("text.vocab_size", t.vocab_size, 1 << 20),
            ("prompt_length", self.prompt_length, t.context_length - 1),
            ("context_decoder.width", c.width, 4096),
            ("context_decoder.heads", c.heads, 64),
            ("context_decoder.layers", c.layers, 64),
            ("context_decoder.visual_dim", c.visual_dim, 4096),
        ];
        match &self.vision {
            VisionConfig::ResNet(r) => {
                sizes.extend([("vision.width", r.width, 1024), ("vision.output_dim", r.output_dim, 4096), ("vision.heads", r.heads, 64), ("vision.positional_grid", r.positional_grid, 128)]);
                sizes.extend(r.layers.iter().map(|&l| ("vision.layers", l, 64)));
            }
            VisionConfig::Vit(v) => sizes.extend([
                ("vision.patch_size", v.patch_size, 64),
                ("vision.width", v.width, 4096),
                ("vision.layers", v.layers, 64),
                ("vision.heads", v.heads, 64),
                ("vision.output_dim", v.output_dim, 4096),
                ("vision.positional_grid", v.positional_grid, 128),
            ]),
        }
        match sizes.into_iter().find(|&(_, value, max)| !(1..=max).contains(&value)) {
            Some((name, value, max)) => Err(format!("{name} is {value}; it must be from 1 to {max}")),
            None => Ok(()),
        }
    }
}

impl ModelConfig for Config {
    fn check(&self) -> Result<()> {
        self.check_sizes().map_err(|message| ModelError::Config { model: "changeclip".into(), message })
    }

    fn build(&self, vs: &nn::Path) -> Result<Box<dyn ChangeModel>> {
        Ok(Box::new(ChangeClip::new(vs, self)?))
    }

    /// Transformer layers hold about 12·width² weights each; a ResNet stage of planes p holds
    /// 17·p² per bottleneck; the attention pool 3·(32w)²; embeddings vocabulary × width; the
    /// FPN, DFC and text-guided decoder about 170·width² (11.2 M at RN50’s 256).
    fn size_estimate(&self) -> u64 {
        let (t, c) = (&self.text, &self.context_decoder);
        let mut parts = vec![
            elements(&[12, t.layers, t.width, t.width]),
            elements(&[t.vocab_size.saturating_add(t.context_length).saturating_add(t.embed_dim), t.width]),
            elements(&[12, c.layers, c.width, c.width]),
            elements(&[2, c.visual_dim, c.width]),
            elements(&[170, self.width, self.width]),
        ];
        match &self.vision {
            VisionConfig::ResNet(r) => {
                let planes = |stage: usize| r.width.saturating_mul(1 << stage);
                parts.extend((0..4).map(|i| elements(&[33, r.layers[i], planes(i), planes(i)])));
                let pooled = r.width.saturating_mul(32);
                parts.extend([elements(&[3, pooled, pooled]), elements(&[pooled, r.output_dim.saturating_add(r.positional_grid.saturating_mul(r.positional_grid))])]);
            }
            VisionConfig::Vit(v) => parts.extend([
                elements(&[12, v.layers, v.width, v.width]),
                elements(&[v.width, v.output_dim.saturating_add(v.positional_grid.saturating_mul(v.positional_grid)).saturating_add(3 * v.patch_size.saturating_mul(v.patch_size))]),
            ]),
        }
        parts.into_iter().fold(0, u64::saturating_add)
    }

    fn normalization(&self) -> Normalization {
        self.normalization
    }

    fn card(&self) -> ModelCard {
        ModelCard {
            paper: "Dong et al., ChangeCLIP: remote sensing change detection with multimodal vision-language representation learning, ISPRS J. 2024",
            summary: "CLIP image and text towers with per-image prompts, score maps, DFC and a text-guided Swin decoder",
        }
    }

    /// `configs/0cd_ce/changeclip_*.py` (the released runs: 20k iterations of 2 GPUs × 20 pairs,
    /// RN50; ViT 2 × 12) and `_base_/datasets/base_cd.py`.
    fn reference_recipe(&self, dataset: Preset) -> Recipe {
        let vit = matches!(self.vision, VisionConfig::Vit(_));
        let lr = match dataset {
            Preset::SysuCd => 3e-5,
            Preset::LevirCdPlus | Preset::WhuCd if vit => 3e-5,
            _ => 1e-4,
        };
        let val_every = match dataset {
            Preset::WhuCd | Preset::SysuCd => 500,
            Preset::Cdd => 2000,
            _ => 1000,
        };
        Recipe {
            batch_size: if vit { 24 } else { 40 },
            crop: Some(256),
            lr,
            weight_decay: 0.01,
            optimizer: OptimizerKind::AdamW,
            schedule: Schedule::WarmupLinear { warmup: 1500 },
            loss: LossKind::CrossEntropyAllPixels,
            rot90: false,
            rotate_degrees: Some(180.0),
            rotate_in_place: true,
            photometric: true,
            no_decay_keys: ["norm", "relative_position_bias_table", "absolute_pos_embed"].map(String::from).to_vec(),
            iterations: Some(20_000),
            val_every: Some(val_every),
            best_by: BestMetric::MeanIou,
            ..Recipe::default()
        }
    }

    fn config_from_reference(&self, state_dict: &BTreeMap<String, Tensor>, path: &Path) -> Result<serde_json::Value> {
        let vit = matches!(self.vision, VisionConfig::Vit(_));
        Ok(serde_json::to_value(Config::from_state_dict(state_dict, path, vit)?).expect("configs serialise"))
    }

    fn load_pretrained(&self, vs: &mut nn::VarStore, path: &Path) -> Option<Result<usize>> {
        Some(load_clip_towers(vs, path))
    }

    fn uses_class_lists(&self) -> bool {
        true
    }
}

/// mmcv's `make_divisible`: the nearest multiple of `divisor`, never 10% below `value`.
fn make_divisible(value: i64, divisor: i64) -> i64 {
    let rounded = ((value + divisor / 2) / divisor * divisor).max(divisor);
    if (rounded as f64) < 0.9 * value as f64 { rounded + divisor } else { rounded }
}

/// `"remote sensing image foreground objects, c₁, c₂, …"` (just the prefix without classes).
pub fn foreground_prompt(classes: &[String]) -> String {
    std::iter::once(FOREGROUND_PROMPT.to_owned()).chain(classes.iter().cloned()).collect::<Vec<_>>().join(", ")
}

/// `x / max(‖x‖, 1e-12)` along `dim` (F.normalize).
fn l2_normalise(x: &Tensor, dim: i64) -> Tensor {
    x / x.norm_scalaropt_dim(2.0, [dim], true).clamp_min(1e-12)
}
