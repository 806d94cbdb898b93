//! ClearSCD (Tang et al., "The ClearSCD model", ISPRS J. 2024), as the authors' `model/ClearSCD.py`
//! builds it: one weight-shared EfficientNet-B0 + FPN applied to each date, a shared semantic
//! head at 1/4 resolution, and deep CVAPS: change detected from |logits_A − logits_B| by
//! three conv-BN-ReLU blocks. The projection head and the per-class, per-date memory queues
//! only serve the SACL loss in training ([`crate::clearscd_loss`]); they live here because they
//! are part of the checkpoint. Variable names follow the official state dict.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tch::nn;
use tch::{IndexOp, Kind, Tensor};

use changedet_data::{Normalization, Preset};

use crate::clearscd_loss::{self, RandomPermutations, ScdLabels, clearscd_losses};
use crate::conv_bn::ConvBn;
use crate::decoders::fpn::{self, Fpn, upsample_bilinear};
use crate::encoders::Encoder;
use crate::encoders::efficientnet::{self, EfficientNet};
use crate::input::BatchTensors;
use crate::recipe::{LossKind, OptimizerKind, Schedule};
use crate::registry::elements;
use crate::{ChangeModel, ChangeOutput, ModelCard, ModelConfig, ModelError, Recipe, Result};
use crate::torch_init;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Land-cover classes (Hi-UCD: 9). The value `num_classes` itself marks unlabeled pixels.
    pub num_classes: i64,
    pub encoder: efficientnet::Config,
    pub decoder: fpn::Config,
    /// conv-BN-ReLU blocks in the CVAPS change head.
    pub cvaps_blocks: i64,
    /// Hidden width of the projection head (its output has the decoder's width).
    pub projection_hidden: i64,
    /// Columns per class and date in the SACL memory queues.
    pub queue_len: i64,
    pub normalization: Normalization,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            num_classes: 9,
            encoder: efficientnet::Config::default(),
            decoder: fpn::Config::default(),
            cvaps_blocks: 3,
            projection_hidden: 32,
            queue_len: 512,
            normalization: Normalization::IMAGENET,
        }
    }
}

/// Deep CVAPS: `cvaps_blocks` × [conv3×3 → BN → ReLU] at the class width, then conv3×3 → 1
/// change logit. Named `head_bcd.convs.N` as in the reference.
#[derive(Debug)]
pub struct Cvaps {
    blocks: Vec<ConvBn>,
    classifier: nn::Conv2D,
}

impl Cvaps {
    fn new(vs: &nn::Path, classes: i64, blocks: i64) -> Self {
        let config = nn::ConvConfig { padding: 1, ..Default::default() };
        let convs = vs / "convs";
        Cvaps {
            blocks: (0..blocks).map(|i| ConvBn::new(&convs / i / 0, &convs / i / 1, classes, classes, 3, config, Default::default())).collect(),
            classifier: torch_init::conv2d(&convs / blocks, classes, 1, 3, config),
        }
    }

    /// The output of every block, the change logit `[n,1,h,w]` last.
    pub fn stages_t(&self, difference: &Tensor, train: bool) -> Vec<Tensor> {
        let mut outputs: Vec<Tensor> = Vec::with_capacity(self.blocks.len() + 1);
        for block in &self.blocks {
            let x = outputs.last().unwrap_or(difference);
            outputs.push(block.forward_t(x, train).relu());
        }
        let logit = outputs.last().unwrap_or(difference).apply(&self.classifier);
        outputs.push(logit);
        outputs
    }
}

/// conv1×1 → BN → ReLU → conv1×1 back to the input width (`proj_head.proj.{0,1,3}`).
#[derive(Debug)]
pub struct ProjectionHead {
    reduce: ConvBn,
    expand: nn::Conv2D,
}

impl ProjectionHead {
    fn new(vs: &nn::Path, channels: i64, hidden: i64) -> Self {
        let vs = vs / "proj";
        ProjectionHead {
            reduce: ConvBn::new(&vs / 0, &vs / 1, channels, hidden, 1, Default::default(), Default::default()),
            expand: torch_init::conv2d(&vs / 3, hidden, channels, 1, Default::default()),
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.reduce.forward_t(x, train).relu().apply(&self.expand)
    }
}

/// Per class, a ring buffer of L2-normalised decoder features for each date: `queue_{A,B}{c}`
/// `[channels, queue_len]` and its write position `ptr_{A,B}{c}` (int64 `[1]`). Buffers, not
/// parameters: saved in checkpoints so that a resumed run continues them.
#[derive(Debug)]
pub struct MemoryQueues {
    /// `queues[date][class]`, date 0 = A.
    queues: [Vec<Tensor>; 2],
    pointers: [Vec<Tensor>; 2],
}

impl MemoryQueues {
    fn new(vs: &nn::Path, classes: i64, channels: i64, len: i64) -> Self {
        let mut queues: [Vec<Tensor>; 2] = Default::default();
        let mut pointers: [Vec<Tensor>; 2] = Default::default();
        for c in 0..classes {
            for (date, tag) in ["A", "B"].iter().enumerate() {
                let random = Tensor::randn([channels, len], (Kind::Float, vs.device()));
                let unit = &random / random.norm_scalaropt_dim(2, [0], true).clamp_min(1e-12);
                queues[date].push(vs.add(&format!("queue_{tag}{c}"), unit, false));
                pointers[date].push(vs.add(&format!("ptr_{tag}{c}"), Tensor::zeros([1], (Kind::Int64, vs.device())), false));
            }
        }
        MemoryQueues { queues, pointers }
    }

    /// Detached copies of every queue, `[date][class]`.
    pub fn snapshot(&self) -> [Vec<Tensor>; 2] {
        [0, 1].map(|d| self.queues[d].iter().map(|q| q.detach().copy()).collect())
    }

    /// Writes `len` unit-length pixels (columns of `pixels`, classes in `classes`) of every class
    /// that has that many into the class's ring buffer of `date`, and advances its pointer.
    pub fn enqueue(&self, date: usize, pixels: &Tensor, classes: &Tensor, len: i64) {
        for (class, (queue, pointer)) in self.queues[date].iter().zip(&self.pointers[date]).enumerate() {
            let index = classes.eq(class as i64).nonzero().squeeze_dim(1);
            if index.size()[0] < len {
                continue;
            }
            let start = pointer.int64_value(&[0]);
            queue.i((.., start..start + len)).copy_(&pixels.index_select(1, &index));
            let _advanced = pointer.shallow_clone().fill_((start + len) % queue.size()[1]);
        }
    }
}

/// Everything one forward pass computes that training or checking needs.
#[derive(Debug)]
pub struct ScdForward {
    /// Decoder maps of each date `[n, 128, h/4, w/4]` (after dropout).
    pub features: [Tensor; 2],
    /// Semantic logits at 1/4 resolution `[n, K, h/4, w/4]`.
    pub logits_low: [Tensor; 2],
    /// Change logit at 1/4 resolution `[n, 1, h/4, w/4]`.
    pub change_low: Tensor,
    /// Semantic logits `[n, K, h, w]`.
    pub semantic: [Tensor; 2],
    /// Change logit `[n, 1, h, w]`.
    pub change: Tensor,
}

#[derive(Debug)]
pub struct ClearScd {
    pub encoder: EfficientNet,
    pub decoder: Fpn,
    pub head_seg: nn::Conv2D,
    pub cvaps: Cvaps,
    pub projection: ProjectionHead,
    pub queues: MemoryQueues,
    pub num_classes: i64,
}

impl ClearScd {
    pub fn new(vs: &nn::Path, cfg: &Config) -> Self {
        let encoder = EfficientNet::new(&(vs / "encoder"), &cfg.encoder);
        let decoder = Fpn::new(&(vs / "decoder"), encoder.channels(), &cfg.decoder);
        let width = cfg.decoder.segmentation_channels;
        let k = cfg.num_classes;
        ClearScd {
            head_seg: torch_init::conv2d(vs / "head_seg" / 0, width, k, 3, nn::ConvConfig { padding: 1, ..Default::default() }),
            cvaps: Cvaps::new(&(vs / "head_bcd"), k, cfg.cvaps_blocks),
            projection: ProjectionHead::new(&(vs / "proj_head"), width, cfg.projection_hidden),
            queues: MemoryQueues::new(vs, k, width, cfg.queue_len),
            encoder,
            decoder,
            num_classes: k,
        }
    }

    /// Decoder map of one date, `[n, 128, h/4, w/4]`.
    pub fn features_t(&self, image: &Tensor, train: bool) -> Tensor {
        let pyramid = self.encoder.forward_t(image, train); // strides 2…32
        self.decoder.forward_t(&pyramid, train)
    }

    /// Both dates `[n, 3, h, w]` (h, w multiples of 32) through the network.
    pub fn forward_scd(&self, before: &Tensor, after: &Tensor, train: bool) -> ScdForward {
        let features = [self.features_t(before, train), self.features_t(after, train)]; // [n,128,h/4,w/4]
        let logits_low = [features[0].apply(&self.head_seg), features[1].apply(&self.head_seg)]; // [n,K,h/4,w/4]
        let difference = (&logits_low[0] - &logits_low[1]).abs(); // raw logits: no softmax
        let change_low = self.cvaps.stages_t(&difference, train).pop().expect("classifier output"); // [n,1,h/4,w/4]
        ScdForward {
            semantic: [upsample_bilinear(&logits_low[0], 4), upsample_bilinear(&logits_low[1], 4)], // [n,K,h,w]
            change: upsample_bilinear(&change_low, 4), // [n,1,h,w]
            features,
            logits_low,
            change_low,
        }
    }
}

impl ChangeModel for ClearScd {
    fn forward_t(&self, before: &Tensor, after: &Tensor, train: bool) -> ChangeOutput {
        let out = self.forward_scd(before, after, train);
        // A single change logit l is the two-class score pair (0, l): softmax gives sigmoid(l).
        let logits = Tensor::cat(&[out.change.zeros_like(), out.change.shallow_clone()], 1);
        ChangeOutput { logits, semantic: Some(out.semantic) }
    }

    fn size_multiple(&self) -> usize {
        32
    }

    /// ClearSCD's own objective (with the recipe's `clearscd` loss settings), which also
    /// advances the memory queues.
    fn training_loss(&self, batch: &BatchTensors, recipe: &Recipe, epoch: usize) -> Result<Tensor> {
        let LossKind::ClearScd(objective) = recipe.loss else {
            return Err(ModelError::Recipe(format!("clearscd trains with its own objective (--loss clearscd), not {:?}", recipe.loss)));
        };
        let [a, b] = batch.semantic_labels()?;
        let out = self.forward_scd(&batch.before, &batch.after, true);
        let labels = ScdLabels { semantic: [a, b], change: batch.change_label()? };
        // The reference's epochs are 1-based: epoch ≤ warmup_epoch is warm-up.
        let warmup = epoch < objective.warmup_epochs;
        Ok(clearscd_losses(self, &out, &labels, &objective, warmup, true, &mut RandomPermutations).total())
    }

    fn freeze_for_inference(&self) {
        self.encoder.freeze_for_inference();
        self.cvaps.blocks.iter().chain([&self.projection.reduce]).for_each(ConvBn::freeze_for_inference);
    }
}

impl ModelConfig for Config {
    fn check(&self) -> Result<()> {
        let fits = |v: i64, max: i64| (1..=max).contains(&v);
        if !(fits(self.num_classes, 254) && fits(self.cvaps_blocks, 16) && fits(self.projection_hidden, 4096) && fits(self.queue_len, 1 << 16)) {
            let message = "num_classes (1–254: class K marks unlabeled pixels in 8-bit labels), cvaps_blocks (1–16), projection_hidden (1–4096) and queue_len (1–65536) must be in range";
            return Err(ModelError::Config { model: "clearscd".into(), message: message.into() });
        }
        Ok(())
    }

    fn build(&self, vs: &nn::Path) -> Result<Box<dyn ChangeModel>> {
        Ok(Box::new(ClearScd::new(vs, self)))
    }

    /// EfficientNet-B0 (4 M), the FPN over its 24+40+112+320 channels, the heads, and the
    /// memory queues (K classes × 2 dates × width × queue length).
    fn size_estimate(&self) -> u64 {
        let (p, s) = (self.decoder.pyramid_channels, self.decoder.segmentation_channels);
        let k = self.num_classes;
        [
            elements(&[4_100_000]),
            elements(&[496, p]),
            elements(&[36, p, s]),
            elements(&[27, s, s]),
            elements(&[9, s, k]),
            elements(&[9, self.cvaps_blocks, k, k]),
            elements(&[2, s, self.projection_hidden]),
            elements(&[2, k, s, self.queue_len]),
        ]
        .into_iter()
        .fold(0, u64::saturating_add)
    }

    fn normalization(&self) -> Normalization {
        self.normalization
    }

    fn card(&self) -> ModelCard {
        ModelCard {
            paper: "Tang et al., The ClearSCD model: comprehensively leveraging semantics and change relationships for semantic change detection, ISPRS J. 2024",
            summary: "semantic change detection: EfficientNet-B0 + FPN per date, deep CVAPS change head, SACL and BSCC losses",
        }
    }

    fn semantic_classes(&self) -> Option<usize> {
        Some(self.num_classes as usize)
    }

    /// `main.py` and `configs/hiucd_mini/ours.json`.
    fn reference_recipe(&self, _dataset: Preset) -> Recipe {
        Recipe {
            epochs: 100,
            batch_size: 8,
            crop: Some(512),
            lr: 2.5e-4,
            weight_decay: 5e-4,
            optimizer: OptimizerKind::Adam,
            schedule: Schedule::Step { epochs: 10, gamma: 0.9 },
            loss: LossKind::ClearScd(clearscd_loss::Config::default()),
            rotate_degrees: Some(30.0),
            ..Recipe::default()
        }
    }

    /// The class count from the semantic head, the queue length from the queues.
    fn config_from_reference(&self, state_dict: &BTreeMap<String, Tensor>, path: &Path) -> Result<Value> {
        let dimension = |key: &str, dim: usize| -> Result<Option<i64>> {
            let Some(tensor) = state_dict.get(key) else { return Ok(None) };
            tensor.size().get(dim).copied().map(Some).ok_or_else(|| ModelError::Checkpoint {
                path: path.to_owned(),
                message: format!("'{key}' has shape {:?}, too few dimensions for a ClearSCD checkpoint", tensor.size()),
            })
        };
        let mut config = serde_json::Map::new();
        if let Some(classes) = dimension("head_seg.0.weight", 0)? {
            config.insert("num_classes".into(), json!(classes));
        }
        if let Some(len) = dimension("queue_A0", 1)? {
            config.insert("queue_len".into(), json!(len));
        }
        Ok(Value::Object(config))
    }

    fn unused_reference_entry(&self, key: &str) -> Option<&'static str> {
        (key.starts_with("encoder._conv_head.") || key.starts_with("encoder._bn1."))
            .then_some("EfficientNet classification head: built by the reference but not in its forward pass")
    }
}


#[cfg(test)]
mod tests {
    /// The reference builds its layers with PyTorch's defaults (its `pretrained` path loads no
    /// weight: `encoder_dict.update` never reaches the encoder), so training from scratch starts
    /// where it does.
    #[test]
    fn starts_from_pytorchs_default_initialisation() {
        let vs = tch::nn::VarStore::new(tch::Device::Cpu);
        let _model = super::ClearScd::new(&vs.root(), &super::Config::default());
        crate::torch_init::assert_pytorch_defaults(&vs);
    }
}
