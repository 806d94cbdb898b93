//! ChangeCLIP's vision-language-driven decoder (`SwinTextDecode`): three stages that each
//! upsample the coarser map, run two Swin blocks whose tokens first attend to the image pair's
//! text embeddings, and fuse the result with the next skip level; a 1×1 classifier at stride 4.
//! The Swin branch works at half the decoder width (the reference's 256 in, 128 inside), which
//! the text tokens are projected to; the attention sizes below are the reference's fixed ones.

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use crate::clip::transformer::drop_path;
use crate::torch_init::{self, ConvInit};

const WINDOW: i64 = 7;
const SHIFT: i64 = WINDOW / 2;
const GROUPS: i64 = 32;
/// Swin blocks per stage, and attention heads in each.
const BLOCKS: i64 = 2;
const HEADS: i64 = 2;
/// Query/key and value widths of the text cross-attention.
const TEXT_ATTENTION_DIM: i64 = 64;
const TEXT_VALUE_DIM: i64 = 256;

fn conv(vs: nn::Path, c_in: i64, c_out: i64, k: i64) -> nn::Conv2D {
    torch_init::conv2d(vs, c_in, c_out, k, nn::ConvConfig { padding: k / 2, ..Default::default() })
}

/// Text cross-attention: image tokens query the text tokens, `softmax(q kᵀ/√d) v`.
#[derive(Debug)]
struct LowRankBilinearAttention {
    wq: nn::Linear,
    wk: nn::Linear,
    wv: nn::Linear,
}

impl LowRankBilinearAttention {
    fn new(vs: nn::Path, width: i64) -> Self {
        Self {
            wq: torch_init::linear(&vs / "WQ", width, TEXT_ATTENTION_DIM),
            wk: torch_init::linear(&vs / "WK", width, TEXT_ATTENTION_DIM),
            wv: torch_init::linear(&vs / "WV", width, TEXT_VALUE_DIM),
        }
    }

    /// `x` `[n, l, c]`, `text` `[n, t, c]` → `[n, l, 256]`.
    fn forward(&self, x: &Tensor, text: &Tensor) -> Tensor {
        let q = self.wq.forward(x);
        let scores = q.matmul(&self.wk.forward(text).transpose(-2, -1)) / (TEXT_ATTENTION_DIM as f64).sqrt();
        scores.softmax(-1, Kind::Float).matmul(&self.wv.forward(text))
    }
}

/// Swin's relative position index of a `WINDOW × WINDOW` window, `[49, 49]`.
fn relative_position_index() -> Tensor {
    let n = WINDOW * WINDOW;
    let mut index = Vec::with_capacity((n * n) as usize);
    for a in 0..n {
        for b in 0..n {
            let (dy, dx) = (a / WINDOW - b / WINDOW + WINDOW - 1, a % WINDOW - b % WINDOW + WINDOW - 1);
            index.push(dy * (2 * WINDOW - 1) + dx);
        }
    }
    Tensor::from_slice(&index).view([n, n])
}

/// `[n, h, w, c]` (h, w multiples of the window) → `[n·windows, 49, c]`.
fn window_partition(x: &Tensor) -> Tensor {
    let (n, h, w, c) = x.size4().expect("[n, h, w, c]");
    x.view([n, h / WINDOW, WINDOW, w / WINDOW, WINDOW, c]).permute([0, 1, 3, 2, 4, 5]).reshape([-1, WINDOW * WINDOW, c])
}

fn window_reverse(windows: &Tensor, n: i64, h: i64, w: i64) -> Tensor {
    windows.view([n, h / WINDOW, w / WINDOW, WINDOW, WINDOW, -1]).permute([0, 1, 3, 2, 4, 5]).reshape([n, h, w, -1])
}

/// −100 between tokens of a shifted window that come from different image regions, `[windows, 49, 49]`.
fn shifted_window_mask(hp: i64, wp: i64, device: tch::Device) -> Tensor {
    let region = |i: i64, size: i64| if i < size - WINDOW { 0 } else if i < size - SHIFT { 1 } else { 2 };
    let labels: Vec<f32> = (0..hp).flat_map(|y| (0..wp).map(move |x| (3 * region(y, hp) + region(x, wp)) as f32)).collect();
    let windows = window_partition(&Tensor::from_slice(&labels).view([1, hp, wp, 1])).squeeze_dim(-1); // [windows, 49]
    let different = windows.unsqueeze(1) - windows.unsqueeze(2);
    different.ne(0.0).to_kind(Kind::Float).to_device(device) * -100.0
}

#[derive(Debug)]
struct WindowAttention {
    qkv: nn::Linear,
    proj: nn::Linear,
    relative_position_bias_table: Tensor,
    relative_position_index: Tensor,
    heads: i64,
}

impl WindowAttention {
    fn new(vs: nn::Path, width: i64, heads: i64) -> Self {
        let table_len = (2 * WINDOW - 1) * (2 * WINDOW - 1);
        Self {
            qkv: torch_init::linear(&vs / "qkv", width, 3 * width),
            proj: torch_init::linear(&vs / "proj", width, width),
            relative_position_bias_table: vs.var("relative_position_bias_table", &[table_len, heads], nn::Init::Randn { mean: 0.0, stdev: 0.02 }),
            relative_position_index: vs.add("relative_position_index", relative_position_index().to_device(vs.device()), false),
            heads,
        }
    }

    /// Windows `[b, 49, c]` → `[b, 49, c]`; `mask` `[windows, 49, 49]` for shifted windows.
    fn forward(&self, x: &Tensor, mask: Option<&Tensor>) -> Tensor {
        let (b, n, c) = x.size3().expect("[b, n, c]");
        let qkv = self.qkv.forward(x).reshape([b, n, 3, self.heads, c / self.heads]).permute([2, 0, 3, 1, 4]);
        let (q, k, v) = (qkv.get(0), qkv.get(1), qkv.get(2));
        let scale = ((c / self.heads) as f64).powf(-0.5);
        let bias = self.relative_position_bias_table.index_select(0, &self.relative_position_index.view([-1])).view([n, n, -1]).permute([2, 0, 1]);
        let mut attn = (q * scale).matmul(&k.transpose(-2, -1)) + bias.unsqueeze(0); // [b, heads, n, n]
        if let Some(mask) = mask {
            let windows = mask.size()[0];
            attn = (attn.view([b / windows, windows, self.heads, n, n]) + mask.unsqueeze(1).unsqueeze(0)).view([-1, self.heads, n, n]);
        }
        let out = attn.softmax(-1, Kind::Float).matmul(&v).transpose(1, 2).reshape([b, n, c]);
        self.proj.forward(&out)
    }
}

#[derive(Debug)]
struct SwinTextBlock {
    low_rank_bilinear: LowRankBilinearAttention,
    text_proj: nn::Linear,
    norm1: nn::LayerNorm,
    attn: WindowAttention,
    norm2: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    shift: i64,
    drop_path: f64,
}

impl SwinTextBlock {
    fn new(vs: nn::Path, width: i64, heads: i64, shift: i64, drop_path: f64) -> Self {
        Self {
            low_rank_bilinear: LowRankBilinearAttention::new(&vs / "low_rank_bilinear", width),
            text_proj: torch_init::linear(&vs / "proj", TEXT_VALUE_DIM, width),
            norm1: nn::layer_norm(&vs / "norm1", vec![width], Default::default()),
            attn: WindowAttention::new(&vs / "attn", width, heads),
            norm2: nn::layer_norm(&vs / "norm2", vec![width], Default::default()),
            fc1: torch_init::linear(&vs / "mlp" / "fc1", width, 4 * width),
            fc2: torch_init::linear(&vs / "mlp" / "fc2", 4 * width, width),
            shift,
            drop_path,
        }
    }

    /// Tokens `[n, h·w, c]` (row-major grid) with text `[n, t, c]`.
    fn forward_t(&self, x: &Tensor, text: &Tensor, (h, w): (i64, i64), mask: &Tensor, train: bool) -> Tensor {
        let x = self.text_proj.forward(&self.low_rank_bilinear.forward(x, text)) + x;
        let (n, l, c) = x.size3().expect("[n, l, c]");
        // Zero-pad right and bottom to whole windows, after the norm, as the reference does.
        let (pad_r, pad_b) = ((WINDOW - w % WINDOW) % WINDOW, (WINDOW - h % WINDOW) % WINDOW);
        let grid = self.norm1.forward(&x).view([n, h, w, c]).constant_pad_nd([0, 0, 0, pad_r, 0, pad_b]);
        let (hp, wp) = (h + pad_b, w + pad_r);
        let shifted = if self.shift > 0 { grid.roll([-self.shift, -self.shift], [1, 2]) } else { grid };
        let attended = self.attn.forward(&window_partition(&shifted), (self.shift > 0).then_some(mask));
        let merged = window_reverse(&attended, n, hp, wp);
        let unshifted = if self.shift > 0 { merged.roll([self.shift, self.shift], [1, 2]) } else { merged };
        let attended = unshifted.narrow(1, 0, h).narrow(2, 0, w).reshape([n, l, c]);
        let x = &x + drop_path(attended, self.drop_path, train);
        let mlp = self.fc2.forward(&self.fc1.forward(&self.norm2.forward(&x)).gelu("none"));
        &x + drop_path(mlp, self.drop_path, train)
    }
}

/// One decoder stage (`Swin_Decoder`): `coarse` `[n, 256, h, w]` and `skip` `[n, 256, 2h, 2w]` →
/// `[n, 256, 2h, 2w]`, plus the Swin branch's output `[n, 128, 2h, 2w]` for inspection.
#[derive(Debug)]
struct Stage {
    up_conv: nn::Conv2D,
    up_norm: nn::GroupNorm,
    blocks: Vec<SwinTextBlock>,
    swin_out: nn::Conv2D,
    skip_conv: nn::Conv2D,
    fuse_conv: nn::Conv2D,
}

impl Stage {
    fn new(vs: nn::Path, width: i64) -> Self {
        let half = width / 2;
        let swin = &vs / "up";
        let blocks = &swin / "layer" / "blocks";
        Self {
            up_conv: conv(&swin / "up" / "up" / 1, width, half, 3),
            up_norm: nn::group_norm(&swin / "up" / "up" / 2, GROUPS, half, Default::default()),
            // drop path rises linearly over the two blocks: 0, 0.2; odd blocks are shifted.
            blocks: (0..BLOCKS).map(|i| SwinTextBlock::new(&blocks / i, half, HEADS, if i % 2 == 1 { SHIFT } else { 0 }, 0.2 * i as f64)).collect(),
            swin_out: conv(&swin / "conv_relu" / 0, half, half, 1),
            skip_conv: conv(&vs / "conv2" / 0, width, half, 1),
            fuse_conv: conv(&vs / "conv_relu" / 0, width, width, 3),
        }
    }

    fn forward_t(&self, coarse: &Tensor, skip: &Tensor, text: &Tensor, train: bool) -> (Tensor, Tensor) {
        let (n, _, h, w) = coarse.size4().expect("[n, c, h, w]");
        let (h2, w2) = (2 * h, 2 * w);
        let up = coarse.upsample_nearest2d([h2, w2], None, None).apply(&self.up_conv).apply(&self.up_norm).relu(); // [n, 128, 2h, 2w]
        let c = up.size()[1];
        let mut tokens = up.reshape([n, c, h2 * w2]).transpose(1, 2); // [n, 4hw, 128]
        let pad = |s: i64| (s + WINDOW - 1) / WINDOW * WINDOW;
        let mask = shifted_window_mask(pad(h2), pad(w2), tokens.device());
        for block in &self.blocks {
            tokens = block.forward_t(&tokens, text, (h2, w2), &mask, train);
        }
        let swin = tokens.transpose(1, 2).reshape([n, c, h2, w2]).apply(&self.swin_out).relu(); // [n, 128, 2h, 2w]
        let skip = skip.apply(&self.skip_conv).relu(); // [n, 128, 2h, 2w]
        let out = Tensor::cat(&[skip, swin.shallow_clone()], 1).apply(&self.fuse_conv).relu(); // [n, 256, 2h, 2w]
        (out, swin)
    }
}

/// What the decoder computes, stage by stage.
pub struct SwinTextOutput {
    /// `[n, 2·t, 128]`: both dates' text embeddings projected for the cross-attention.
    pub text_tokens: Tensor,
    /// Stage outputs at strides 16, 8, 4, and their Swin branches.
    pub stages: Vec<Tensor>,
    pub swin: Vec<Tensor>,
    /// Class scores at stride 4.
    pub logits: Tensor,
}

#[derive(Debug)]
pub struct SwinTextDecoder {
    linear_a: (nn::Linear, nn::LayerNorm),
    linear_b: (nn::Linear, nn::LayerNorm),
    stages: Vec<Stage>,
    conv_seg: nn::Conv2D,
    dropout: f64,
}

impl SwinTextDecoder {
    /// `width`: channels of the four input levels; `text_dim`: width of the text embeddings.
    pub fn new(vs: nn::Path, width: i64, text_dim: i64, classes: i64) -> Self {
        let half = width / 2;
        let text_head = |p: nn::Path| (torch_init::linear(&p / 0, text_dim, half), nn::layer_norm(&p / 1, vec![half], Default::default()));
        Self {
            linear_a: text_head(&vs / "linearA"),
            linear_b: text_head(&vs / "linearB"),
            stages: (1..=3).map(|i| Stage::new(&vs / format!("layer{i}"), width)).collect(),
            // mmseg's decode heads: `conv_seg` Normal(0, 0.01).
            conv_seg: torch_init::conv2d_with(&vs / "conv_seg", width, classes, 1, Default::default(), ConvInit::Normal(0.01)),
            dropout: 0.1,
        }
    }

    /// `levels` at strides 4, 8, 16, 32; text embeddings `[n, t, text_dim]` of each date.
    pub fn forward_t(&self, levels: &[Tensor], text_a: &Tensor, text_b: &Tensor, train: bool) -> SwinTextOutput {
        let project = |(linear, norm): &(nn::Linear, nn::LayerNorm), t: &Tensor| norm.forward(&linear.forward(t));
        let text_tokens = Tensor::cat(&[project(&self.linear_a, text_a), project(&self.linear_b, text_b)], 1); // [n, 2t, 128]
        let mut x = levels[3].shallow_clone();
        let (mut stages, mut swin) = (Vec::with_capacity(3), Vec::with_capacity(3));
        for (stage, skip) in self.stages.iter().zip(levels[..3].iter().rev()) {
            let (out, branch) = stage.forward_t(&x, skip, &text_tokens, train);
            x = out.shallow_clone();
            stages.push(out);
            swin.push(branch);
        }
        let logits = x.feature_dropout(self.dropout, train).apply(&self.conv_seg); // [n, classes, h/4, w/4]
        SwinTextOutput { text_tokens, stages, swin, logits }
    }
}
