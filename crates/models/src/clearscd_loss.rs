//! ClearSCD's training objective, as the authors' `main.py`, `model/ClearSCD.py` and
//! `loss/losses.py` compute it:
//!
//! total = BCE + Dice (change, ignore 255) + CE_A + CE_B (semantics, ignore K) + SACL + BSCC
//!
//! * **SACL**, local: per class, a prototype of sampled projected pixels (both dates) contrasted
//!   by InfoNCE (τ) against sampled, normalised decoder pixels; × `contrast_weight`.
//!   Global (after the warm-up epochs): per class and date, the hard-pixel-weighted centre of the
//!   projected features against the memory queues, a cosine loss with no temperature; weight 1.
//!   Afterwards the queues take 64 fresh decoder pixels of every class that has that many.
//! * **BSCC**: |F_A − F_B| pulled to 0 where CVAPS says "unchanged" and pushed past the margin
//!   where it says "changed", weighted by its (not detached) change probability.
//!
//! All of SACL and BSCC works at 1/4 resolution on labels sampled at pixel (4i, 4j), as the
//! reference's nearest downsampling does.
//!
//! Departures from the reference, where it would crash: a batch whose labels hold a single
//! class value is sampled like any other (the reference's sampler returns nothing and the
//! step fails); unlabeled pixels (value K) never form a hard-centre query (the reference
//! indexes class K of a K-class softmax when a batch is fully unlabeled); a date with no
//! labelled class adds 0 to the global term instead of dividing by zero.

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::clearscd::{ClearScd, ScdForward};
use crate::recipe::loss::{bce_with_ignore, cross_entropy_ignoring, dice_with_ignore};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub contrast_weight: f64,
    pub temperature: f64,
    /// Pixels sampled per class and date for the local term.
    pub sample_num: i64,
    /// Pixels per class and date written to a queue after each step.
    pub enqueue_len: i64,
    /// Epochs (1-based) up to which the global term is 0 and the queues only fill.
    pub warmup_epochs: usize,
    pub bscc_margin: f64,
    pub bscc_weight: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config { contrast_weight: 0.1, temperature: 0.1, sample_num: 1024, enqueue_len: 64, warmup_epochs: 1, bscc_margin: 2.0, bscc_weight: 0.1 }
    }
}

/// Where SACL's random pixel orders come from: `torch.randperm` in training; recorded
/// permutations when checking against the reference.
pub trait Permutations {
    fn permutation(&mut self, n: i64, device: Device) -> Tensor;
}

/// Fresh random permutations from torch's generator (seeded by the trainer).
pub struct RandomPermutations;

impl Permutations for RandomPermutations {
    fn permutation(&mut self, n: i64, device: Device) -> Tensor {
        Tensor::randperm(n, (Kind::Int64, device))
    }
}

/// Labels of a batch: semantic `[n, h, w]` int64 in 0..=K (K = unlabeled), change `[n, h, w]`
/// int64 0/1/255.
pub struct ScdLabels<'a> {
    pub semantic: [&'a Tensor; 2],
    pub change: &'a Tensor,
}

/// Every term, each a scalar tensor on the graph. `sacl = sacl_local + sacl_global`.
#[derive(Debug)]
pub struct ClearScdLosses {
    pub ce: [Tensor; 2],
    pub bce: Tensor,
    pub dice: Tensor,
    /// Already × `bscc_weight`.
    pub bscc: Tensor,
    /// Already × `contrast_weight`.
    pub sacl_local: Tensor,
    pub sacl_global: Tensor,
}

impl ClearScdLosses {
    pub fn sacl(&self) -> Tensor {
        &self.sacl_local + &self.sacl_global
    }

    /// Sum in `main.py`'s order.
    pub fn total(&self) -> Tensor {
        &self.bce + &self.dice + &self.ce[0] + &self.ce[1] + self.sacl() + &self.bscc
    }

    /// Named scalar values, for logs.
    pub fn values(&self) -> Vec<(&'static str, f64)> {
        let v = |t: &Tensor| t.double_value(&[]);
        vec![
            ("ce_A", v(&self.ce[0])),
            ("ce_B", v(&self.ce[1])),
            ("bce", v(&self.bce)),
            ("dice", v(&self.dice)),
            ("sacl_local", v(&self.sacl_local)),
            ("sacl_global", v(&self.sacl_global)),
            ("bscc", v(&self.bscc)),
        ]
    }
}

/// Computes every loss of one forward pass and then updates `model`'s memory queues.
/// `warmup`: the global SACL term is 0 (its queues only fill). `train` applies to the projection
/// head's batch norm.
pub fn clearscd_losses(
    model: &ClearScd,
    out: &ScdForward,
    labels: &ScdLabels,
    cfg: &Config,
    warmup: bool,
    train: bool,
    permutations: &mut dyn Permutations,
) -> ClearScdLosses {
    let k = model.num_classes;
    let ce = [0, 1].map(|d| cross_entropy_ignoring(&out.semantic[d], labels.semantic[d], k));
    let change = out.change.squeeze_dim(1); // [n,h,w]
    let bce = bce_with_ignore(&change, labels.change);
    let dice = dice_with_ignore(&change, labels.change);

    let low = [0, 1].map(|d| downsample_labels(labels.semantic[d], 4)); // [n,h/4,w/4]
    let projected = [0, 1].map(|d| model.projection.forward_t(&out.features[d], train)); // [n,128,h/4,w/4]
    let sacl_local = local_contrast(&projected, &out.features, &low, k, cfg, permutations);
    let sacl_global = global_contrast(model, out, &projected, &low, cfg, warmup, permutations);
    let bscc = bscc(&out.features, &out.change_low, cfg.bscc_margin) * cfg.bscc_weight;
    ClearScdLosses { ce, bce, dice, bscc, sacl_local, sacl_global }
}

/// The label at pixel (f·i, f·j) of every f×f block: PyTorch's `nearest` downsampling.
pub fn downsample_labels(label: &Tensor, factor: i64) -> Tensor {
    let (h, w) = (label.size()[1], label.size()[2]);
    label.slice(1, 0, h, factor).slice(2, 0, w, factor)
}

/// `[n, c, h, w]` → `[c, n·h·w]`, pixel index b·h·w + y·w + x.
fn pixels(features: &Tensor) -> Tensor {
    let c = features.size()[1];
    features.flatten(2, 3).permute([1, 0, 2]).reshape([c, -1])
}

fn normalize_columns(x: &Tensor) -> Tensor {
    x / x.norm_scalaropt_dim(2, [0], true).clamp_min(1e-12)
}

/// Distinct label values in ascending order: the first always, later ones only if below K
/// (so unlabeled pixels are taken only when nothing else is present), as the reference's
/// samplers iterate.
fn sampled_classes(label: &Tensor, k: i64) -> Vec<i64> {
    let values = distinct_values(label);
    values.iter().enumerate().filter(|&(i, &v)| i == 0 || v < k).map(|(_, &v)| v).collect()
}

/// The distinct values of an integer tensor, ascending. (`unique_dim` would give the same on a
/// flat tensor, but compares element by element through `select` and `equal`: a profile of the
/// training step found 150,000 such calls, a quarter of ClearSCD's step.)
fn distinct_values(t: &Tensor) -> Vec<i64> {
    let (values, _, _) = t.flatten(0, -1).internal_unique2(true, false, false);
    Vec::<i64>::try_from(values).expect("integer labels")
}

/// Up to `limit` randomly ordered pixels of each class: `[c, m]` and their classes `[m]`.
fn sample_pixels(features: &Tensor, label: &Tensor, k: i64, limit: i64, permutations: &mut dyn Permutations) -> (Tensor, Tensor) {
    let all = pixels(features);
    let flat = label.flatten(0, -1);
    let (mut chosen, mut classes) = (Vec::new(), Vec::new());
    for class in sampled_classes(label, k) {
        let index = flat.eq(class).nonzero().squeeze_dim(1);
        let order = permutations.permutation(index.size()[0], index.device());
        let picked = index.index_select(0, &order).narrow(0, 0, order.size()[0].min(limit));
        classes.push(Tensor::full([picked.size()[0]], class, (Kind::Int64, flat.device())));
        chosen.push(all.index_select(1, &picked));
    }
    (Tensor::cat(&chosen, 1), Tensor::cat(&classes, 0))
}

/// SACL local term: class prototypes from projected pixels vs. individual decoder pixels.
fn local_contrast(projected: &[Tensor; 2], features: &[Tensor; 2], labels: &[Tensor; 2], k: i64, cfg: &Config, permutations: &mut dyn Permutations) -> Tensor {
    let mut sample = |f: &Tensor, l: &Tensor| sample_pixels(f, l, k, cfg.sample_num, permutations);
    let (qa, qa_class) = sample(&projected[0], &labels[0]);
    let (qb, qb_class) = sample(&projected[1], &labels[1]);
    let (ka, ka_class) = sample(&features[0], &labels[0]);
    let (kb, kb_class) = sample(&features[1], &labels[1]);
    let queries = Tensor::cat(&[qa, qb], 1); // [128, m_q]
    let query_class = Tensor::cat(&[qa_class, qb_class], 0);
    let keys = normalize_columns(&Tensor::cat(&[ka, kb], 1)); // [128, m_k], unit columns
    let key_class = Tensor::cat(&[ka_class, kb_class], 0);

    let present = distinct_values(&query_class);
    let mut total = queries.sum(None::<Kind>) * 0.0;
    for &class in present.iter().filter(|&&c| c < k) {
        let anchor = queries.index_select(1, &query_class.eq(class).nonzero().squeeze_dim(1)).mean_dim(1, false, None::<Kind>);
        let anchor = (&anchor / anchor.norm().clamp_min(1e-12)).unsqueeze(0); // [1,128]
        let positive = anchor.matmul(&keys.index_select(1, &key_class.eq(class).nonzero().squeeze_dim(1))); // [1,P]
        let negative = anchor.matmul(&keys.index_select(1, &key_class.ne(class).nonzero().squeeze_dim(1))); // [1,N]
        let p = positive.size()[1];
        let logits = Tensor::cat(&[positive.transpose(0, 1), negative.expand([p, -1], false)], 1) / cfg.temperature; // [P,1+N]
        total += -logits.log_softmax(1, None::<Kind>).select(1, 0).mean(None::<Kind>);
    }
    total * cfg.contrast_weight / present.len() as f64
}

/// Per class present (below K), the centre of the projected features weighted by how badly the
/// (detached) prediction scores that class: `[classes, 128]`, unit rows, with the class list.
fn hard_centres(projected: &Tensor, logits: &Tensor, label: &Tensor, k: i64) -> (Tensor, Vec<i64>) {
    let probability = pixels(&logits.detach().softmax(1, None::<Kind>)); // [K, n·h·w]
    let all = pixels(projected); // [128, n·h·w]
    let flat = label.flatten(0, -1);
    let classes: Vec<i64> = sampled_classes(label, k).into_iter().filter(|&c| c < k).collect();
    let centres: Vec<Tensor> = classes
        .iter()
        .map(|&class| {
            let index = flat.eq(class).nonzero().squeeze_dim(1);
            let weight = 1f64 - probability.get(class).index_select(0, &index); // [m]
            let weighted = all.index_select(1, &index) * weight.unsqueeze(0);
            let centre = weighted.sum_dim_intlist(1, false, None::<Kind>) / weight.sum(None::<Kind>);
            &centre / centre.norm().clamp_min(1e-12)
        })
        .collect();
    let centres = if centres.is_empty() { Tensor::zeros([0, all.size()[0]], (all.kind(), all.device())) } else { Tensor::stack(&centres, 0) };
    (centres, classes)
}

/// SACL global term, then the queue update (in both warm-up and normal epochs).
fn global_contrast(model: &ClearScd, out: &ScdForward, projected: &[Tensor; 2], labels: &[Tensor; 2], cfg: &Config, warmup: bool, permutations: &mut dyn Permutations) -> Tensor {
    let k = model.num_classes;
    let keys = [0, 1].map(|d| tch::no_grad(|| sample_pixels(&out.features[d].detach(), &labels[d], k, cfg.enqueue_len, permutations)));
    let mut loss = projected[0].sum(None::<Kind>) * 0.0;
    if !warmup {
        // Copies: the queues change in place below, before the backward pass.
        let snapshot = model.queues.snapshot();
        for date in 0..2 {
            let other = 1 - date;
            let (centres, classes) = hard_centres(&projected[date], &out.logits_low[date], &labels[date], k);
            if classes.is_empty() {
                continue;
            }
            let mut sum = loss.zeros_like();
            for (row, &class) in classes.iter().enumerate() {
                let query = centres.get(row as i64).unsqueeze(0); // [1,128]
                let c = class as usize;
                let positive = query.matmul(&Tensor::cat(&[&snapshot[date][c], &snapshot[other][c]], 1)); // [1,2L]
                let negatives: Vec<&Tensor> = (0..k as usize).filter(|&j| j != c).flat_map(|j| [&snapshot[date][j], &snapshot[other][j]]).collect();
                let negative = query.matmul(&Tensor::cat(&negatives, 1)); // [1,2(K−1)L]
                sum += ((1f64 - positive).mean(None::<Kind>) + (1f64 + negative).mean(None::<Kind>)) / 2.0;
            }
            loss += sum / (2.0 * classes.len() as f64);
        }
    }
    tch::no_grad(|| {
        for (date, (pixels, classes)) in keys.iter().enumerate() {
            model.queues.enqueue(date, &normalize_columns(pixels), classes, cfg.enqueue_len);
        }
    });
    loss
}

/// BSCC (`BSCCLoss`, margin M, ε = 1e-4) on the decoder maps and the low-resolution change
/// logit, averaged over channels.
fn bscc(features: &[Tensor; 2], change_low: &Tensor, margin: f64) -> Tensor {
    let gap = (&features[0] - &features[1]).abs(); // [n,128,h,w]
    let t = change_low.sigmoid(); // [n,1,h,w], not detached: BSCC also trains CVAPS
    let m = t.round(); // half to even: t = 0.5 counts as unchanged
    let unchanged = m.eq(0.0).to_kind(t.kind());
    let changed = m.eq(1.0).to_kind(t.kind());
    let n_u = (&unchanged * (1f64 - &t)).sum(None::<Kind>) + 1e-4;
    let n_c = (&changed * &t).sum(None::<Kind>) + 1e-4;
    let pull = ((1f64 - &t) * &unchanged * gap.square()).sum(None::<Kind>) / n_u;
    let push = (&t * &changed * (margin - &gap).clamp_min(0.0).square()).sum(None::<Kind>) / n_c;
    (pull * 0.5 + push * 0.5) / gap.size()[1] as f64
}
