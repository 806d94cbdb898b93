//! Running a model over a dataset split: the change maps that `eval` scores and `predict`
//! writes come from this one place.

use tch::{Device, Kind, Tensor};

use changedet_data::{Augment, Batch, BatchLoader, Dataset, LoaderConfig};
use changedet_metrics::{BinaryConfusion, EveryConvention, ScdMaps};
use changedet_models::input::BatchTensors;
use changedet_models::{ChangeOutput, Decision, LoadedModel};

use changedet_raster::progress::Progress;

use crate::protocol::Protocol;
use crate::threshold::ThresholdCurve;
use crate::{Result, TrainError};

/// One pair's result at full resolution.
pub struct PairPrediction {
    pub name: String,
    pub width: usize,
    pub height: usize,
    /// Change probability in [0, 1], row-major.
    pub probability: Vec<f32>,
    /// 1 where the change probability exceeds the model's threshold (by default ½: the
    /// argmax), else 0.
    pub change: Vec<u8>,
    /// The decoded label (0/1/255), when the dataset has labels.
    pub label: Option<Vec<u8>>,
    /// Semantic change datasets: each date's ground-truth classes (0..K, K = unlabeled).
    pub semantic_label: Option<[Vec<u8>; 2]>,
    /// The model's raw output for this pair, `[2, h, w]` on the CPU.
    pub logits: Tensor,
    /// Semantic change models: each date's class map (argmax), and the class scores
    /// `[K, h, w]` on the CPU.
    pub semantic: Option<[SemanticPrediction; 2]>,
}

pub struct SemanticPrediction {
    pub classes: Vec<u8>,
    pub logits: Tensor,
}

/// How a split is run: pairs per forward pass, on which device, under which test-time protocol.
#[derive(Clone, Copy, Debug)]
pub struct SplitOptions {
    pub batch_size: usize,
    pub device: Device,
    pub protocol: Protocol,
}

/// Predicts every pair of `dataset` in order, `batch_size` pairs at a time, calling `visit` on each
/// and counting pairs on `progress`. The visitor's own error type lets callers do their own I/O
/// inside it.
pub fn predict_dataset<E: From<TrainError>>(
    model: &LoadedModel,
    dataset: &Dataset,
    SplitOptions { batch_size, device, protocol }: SplitOptions,
    progress: &Progress,
    mut visit: impl FnMut(PairPrediction) -> Result<(), E>,
) -> Result<(), E> {
    let config = LoaderConfig {
        batch_size,
        augment: Augment::default(),
        normalization: model.spec.normalization(),
        seed: 0,
        epoch: 0,
        cache: None,
    };
    for batch in BatchLoader::new(dataset, (0..dataset.len()).collect(), config) {
        let batch = batch.map_err(TrainError::from)?;
        let first = dataset.pairs.iter().find(|p| p.name == batch.names[0]).map_or_else(|| batch.names[0].clone(), |p| p.before.display().to_string());
        for pair in predict_batch(model, &batch, device, protocol, &first)? {
            visit(pair)?;
            progress.inc(1);
        }
    }
    Ok(())
}

/// Predicts the pairs of one batch (decoded and normalised by the data crate: from a dataset,
/// or from images in memory by `Batch::of_images`). `source` names the first pair's origin in
/// errors (its before image's path, or where the caller got it).
pub fn predict_batch(model: &LoadedModel, batch: &Batch, device: Device, protocol: Protocol, source: &str) -> Result<Vec<PairPrediction>> {
    check_batch(model, protocol, batch, source)?;
    let (out, change) = forward(model, protocol, &BatchTensors::new(batch, device))?;
    pair_predictions(batch, &out, &change)
}

/// Refuses images the protocol's windows or the model's pyramid cannot cover.
fn check_batch(model: &LoadedModel, protocol: Protocol, batch: &Batch, source: &str) -> Result<()> {
    if batch.bands != model.spec.input_bands() {
        return Err(TrainError::Config(format!("{source} has {} bands, but {} takes {}", batch.bands, model.spec.name(), model.spec.input_bands())));
    }
    protocol.check_windows(model.model.as_ref(), batch.height, batch.width)?;
    let smallest = model.spec.config().min_input_side();
    if protocol == Protocol::Whole && batch.width.min(batch.height) < smallest {
        let message = format!("{source} is {}×{} pixels, but {} needs at least {smallest} pixels per side: pad the images", batch.width, batch.height, model.spec.name());
        return Err(TrainError::Config(message));
    }
    let multiple = model.model.size_multiple();
    if protocol == Protocol::Whole && !(batch.width.is_multiple_of(multiple) && batch.height.is_multiple_of(multiple)) {
        let message = format!(
            "pair {} is {}×{} pixels, but {} needs sides that are multiples of {multiple}: crop or pad the images, or predict whole scenes by tiles",
            batch.names[0], batch.width, batch.height, model.spec.name()
        );
        return Err(TrainError::Config(message));
    }
    if protocol != Protocol::Whole && model.spec.is_semantic() {
        return Err(TrainError::Config(format!("protocol {protocol} gives change maps only; semantic change models predict whole images")));
    }
    Ok(())
}

/// The model's outputs and change map `[n, h, w]` (uint8) under `protocol`.
fn forward(model: &LoadedModel, protocol: Protocol, tensors: &BatchTensors) -> Result<(ChangeOutput, Tensor)> {
    Ok(match protocol {
        Protocol::Whole => {
            let out = tch::no_grad(|| model.model.forward_with_classes_t(&tensors.before, &tensors.after, &tensors.classes, false));
            let change = Decision::mask(&out.change_logit(), model.threshold());
            (out, change)
        }
        _ => {
            let (logits, change) = protocol.change(model.model.as_ref(), &tensors.before, &tensors.after, &tensors.classes, model.threshold());
            (ChangeOutput { logits, semantic: None }, change)
        }
    })
}

/// A batch's outputs split into its pairs, on the CPU.
fn pair_predictions(batch: &Batch, out: &ChangeOutput, change: &Tensor) -> Result<Vec<PairPrediction>> {
    let logits = out.logits.to_device(Device::Cpu);
    let probability = Vec::<f32>::try_from(out.probability().to_kind(Kind::Float).to_device(Device::Cpu).flatten(0, -1))?;
    if probability.iter().any(|p| !p.is_finite()) {
        return Err(TrainError::NonFinite(format!("the model produced non-finite scores on pairs {:?}", batch.names)));
    }
    let change = Vec::<u8>::try_from(change.to_device(Device::Cpu).flatten(0, -1))?;
    let semantic = match &out.semantic {
        Some(dates) => {
            let per_date = |t: &Tensor| -> Result<(Tensor, Vec<u8>)> {
                let logits = t.to_device(Device::Cpu);
                let classes = Vec::<u8>::try_from(logits.argmax(1, false).to_kind(Kind::Uint8).flatten(0, -1))?;
                Ok((logits, classes))
            };
            Some([per_date(&dates[0])?, per_date(&dates[1])?])
        }
        None => None,
    };
    let plane = batch.height * batch.width;
    let pixels = |i: usize| i * plane..(i + 1) * plane;
    let pairs = batch.names.iter().enumerate().map(|(i, name)| PairPrediction {
        name: name.clone(),
        width: batch.width,
        height: batch.height,
        probability: probability[pixels(i)].to_vec(),
        change: change[pixels(i)].to_vec(),
        label: batch.label.as_ref().map(|l| l[pixels(i)].to_vec()),
        semantic_label: batch.semantic.as_ref().map(|dates| dates.each_ref().map(|l| l[pixels(i)].to_vec())),
        logits: logits.get(i as i64),
        semantic: semantic.as_ref().map(|dates| {
            dates.each_ref().map(|(logits, classes)| SemanticPrediction { classes: classes[pixels(i)].to_vec(), logits: logits.get(i as i64) })
        }),
    });
    Ok(pairs.collect())
}

/// A semantic change model on a semantically labelled split with `classes` classes, scored in
/// every convention.
pub fn evaluate_every_convention(model: &LoadedModel, dataset: &Dataset, classes: usize, how: SplitOptions, progress: &Progress) -> Result<EveryConvention> {
    let mut scores = EveryConvention::new(classes);
    predict_dataset::<TrainError>(model, dataset, how, progress, |p| {
        let (Some([pred_a, pred_b]), Some([gt_a, gt_b]), Some(gt_change)) = (&p.semantic, &p.semantic_label, &p.label) else {
            return Err(TrainError::Config(format!("pair '{}': no semantic prediction or label", p.name)));
        };
        let maps = ScdMaps { gt_a, gt_b, gt_change, pred_a: &pred_a.classes, pred_b: &pred_b.classes, pred_change: &p.change };
        scores.add(&maps).map_err(|e| TrainError::Config(format!("pair '{}': {e}", p.name)))
    })?;
    Ok(scores)
}

/// The global confusion matrix of `model` on a labelled split under `protocol`.
pub fn evaluate(model: &LoadedModel, dataset: &Dataset, how: SplitOptions, progress: &Progress) -> Result<BinaryConfusion> {
    Ok(evaluate_with_curve(model, dataset, how, progress)?.0)
}

/// [`evaluate`], with the scores the split would get at every other threshold.
pub fn evaluate_with_curve(model: &LoadedModel, dataset: &Dataset, how: SplitOptions, progress: &Progress) -> Result<(BinaryConfusion, ThresholdCurve)> {
    let (mut confusion, mut curve) = (BinaryConfusion::default(), ThresholdCurve::default());
    predict_dataset::<TrainError>(model, dataset, how, progress, |p| {
        let label = p.label.as_ref().ok_or_else(|| TrainError::Config("evaluation needs labels".into()))?;
        curve.add(&p.probability, label);
        confusion.accumulate(&p.change, label, Some(changedet_data::IGNORE)).map_err(|e| TrainError::Config(format!("{}: {e}", p.name)))
    })?;
    Ok((confusion, curve))
}
