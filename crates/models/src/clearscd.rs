//! ClearSCD (Tang et al., "The ClearSCD model", ISPRS J. 2024), as the authors' `model/ClearSCD.py`
//! builds it: one weight-shared EfficientNet-B0 + FPN applied to each date, a shared semantic
//! head at 1/4 resolution, and deep CVAPS: change detected from |logits_A − logits_B| by
//! three conv-BN-ReLU blocks. The projection head and the per-class, per-date memory queues
//! only serve the SACL loss in training (`changedet_train::clearscd_loss`); they live here
//! because they are part of the checkpoint. Variable names follow the official state dict.

use serde::{Deserialize, Serialize};
use tch::nn;
use tch::{Kind, Tensor};

use changedet_data::Normalization;

use crate::decoders::fpn::{self, Fpn, upsample_bilinear};
use crate::encoders::Encoder;
use crate::encoders::efficientnet::{self, EfficientNet};
use crate::{ChangeModel, ChangeOutput};

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
    blocks: Vec<(nn::Conv2D, nn::BatchNorm)>,
    classifier: nn::Conv2D,
}

impl Cvaps {
    fn new(vs: &nn::Path, classes: i64, blocks: i64) -> Self {
        let conv = |p: nn::Path, c_out| nn::conv2d(p, classes, c_out, 3, nn::ConvConfig { padding: 1, ..Default::default() });
        let convs = vs / "convs";
        Cvaps {
            blocks: (0..blocks).map(|i| (conv(&convs / i / 0, classes), nn::batch_norm2d(&convs / i / 1, classes, Default::default()))).collect(),
            classifier: conv(&convs / blocks, 1),
        }
    }

    /// The output of every block, the change logit `[n,1,h,w]` last.
    pub fn stages_t(&self, difference: &Tensor, train: bool) -> Vec<Tensor> {
        let mut outputs: Vec<Tensor> = Vec::with_capacity(self.blocks.len() + 1);
        for (conv, bn) in &self.blocks {
            let x = outputs.last().unwrap_or(difference);
            outputs.push(x.apply(conv).apply_t(bn, train).relu());
        }
        let logit = outputs.last().unwrap_or(difference).apply(&self.classifier);
        outputs.push(logit);
        outputs
    }
}

/// conv1×1 → BN → ReLU → conv1×1 back to the input width (`proj_head.proj.{0,1,3}`).
#[derive(Debug)]
pub struct ProjectionHead {
    reduce: nn::Conv2D,
    bn: nn::BatchNorm,
    expand: nn::Conv2D,
}

impl ProjectionHead {
    fn new(vs: &nn::Path, channels: i64, hidden: i64) -> Self {
        let vs = vs / "proj";
        ProjectionHead {
            reduce: nn::conv2d(&vs / 0, channels, hidden, 1, Default::default()),
            bn: nn::batch_norm2d(&vs / 1, hidden, Default::default()),
            expand: nn::conv2d(&vs / 3, hidden, channels, 1, Default::default()),
        }
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        x.apply(&self.reduce).apply_t(&self.bn, train).relu().apply(&self.expand)
    }
}

/// Per class, a ring buffer of L2-normalised decoder features for each date: `queue_{A,B}{c}`
/// `[channels, queue_len]` and its write position `ptr_{A,B}{c}` (int64 `[1]`). Buffers, not
/// parameters: saved in checkpoints so that a resumed run continues them.
#[derive(Debug)]
pub struct MemoryQueues {
    /// `queues[date][class]`, date 0 = A.
    pub queues: [Vec<Tensor>; 2],
    pub pointers: [Vec<Tensor>; 2],
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
            head_seg: nn::conv2d(vs / "head_seg" / 0, width, k, 3, nn::ConvConfig { padding: 1, ..Default::default() }),
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

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

