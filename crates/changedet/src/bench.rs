use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use tch::{Device, Kind, Tensor};

use changedet_data::Preset;
use changedet_models::input::BatchTensors;
use changedet_models::{Checkpoint, LoadedModel, ModelSpec};
use changedet_train::optim::Adam;

/// Time a model: median inference time per pair and median training-step time per batch.
///
/// Inputs are random tensors of the given size; a training step is forward, the model's
/// training objective under its reference recipe (ClearSCD's full objective, SACL's global term
/// included), backward and an update by the recipe's optimiser. Peak memory is the process's
/// peak resident set (CPU).
#[derive(Parser)]
pub struct Args {
    /// Model to build with its default configuration.
    #[arg(long, default_value = changedet_models::DEFAULT_MODEL, conflicts_with = "checkpoint")]
    model: String,
    /// Overrides of the model's configuration, as JSON (e.g. '{"width": 4}').
    #[arg(long, conflicts_with = "checkpoint")]
    config: Option<String>,
    /// Benchmark the model of this checkpoint instead.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Input side in pixels.
    #[arg(long, default_value_t = 256, value_parser = crate::values::at_least_one_i64, conflicts_with = "scene")]
    size: i64,
    /// Input side of the training step, if different from --size.
    #[arg(long, value_parser = crate::values::at_least_one_i64, conflicts_with = "scene")]
    train_size: Option<i64>,
    /// Batch size of the training step.
    #[arg(long, default_value_t = 4, value_parser = crate::values::at_least_one_i64, conflicts_with = "scene")]
    batch_size: i64,
    /// Pairs per timed forward pass (a GPU's throughput needs batches).
    #[arg(long, default_value_t = 1, value_parser = crate::values::at_least_one_i64, conflicts_with = "scene")]
    inference_batch: i64,
    /// Timed repetitions (after one warm-up).
    #[arg(long, default_value_t = 10, value_parser = crate::values::at_least_one, conflicts_with = "scene")]
    iters: usize,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Arithmetic of the timed forward passes and training step: fp32, or autocast to bf16 or
    /// fp16 (see `predict --precision`).
    #[arg(long, default_value = "fp32")]
    precision: changedet_models::Precision,
    /// Whole-scene benchmark instead: predict a generated SIDE×SIDE scene pair (the
    /// --scene-from pair repeated as a mosaic, georeferenced) with `predict`'s scene pipeline,
    /// and report megapixels per second and peak RSS.
    #[arg(long, value_name = "SIDE", requires = "scene_from")]
    scene: Option<usize>,
    /// Before and after image of the mosaic, comma-separated (e.g. a LEVIR-CD 1024×1024 pair).
    #[arg(long, value_delimiter = ',')]
    scene_from: Vec<PathBuf>,
    /// Tile side of the scene benchmark.
    #[arg(long, default_value_t = 512, value_parser = crate::values::at_least_one)]
    tile: usize,
    /// Rounds of the scene benchmark, each the scene then the model alone (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = crate::values::at_least_one, requires = "scene")]
    rounds: usize,
    /// Also profile one more training step and one more inference with libtorch's profiler and
    /// print the N operators that took longest (self time, as torch.profiler reports it; CPU
    /// operators only, so on a GPU their times are launch times).
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "12", conflicts_with = "scene")]
    profile: Option<usize>,
}

/// An epoch past every objective's warm-up (ClearSCD's global SACL term starts after epoch 1).
const EPOCH_AFTER_WARMUP: usize = 1_000;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 }
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

fn time(iters: usize, device: Device, mut f: impl FnMut()) -> Vec<f64> {
    f();
    sync(device);
    (0..iters)
        .map(|_| {
            let start = Instant::now();
            f();
            sync(device);
            start.elapsed().as_secs_f64()
        })
        .collect()
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<f64>().ok()? / 1024.0)
}

pub fn run(args: Args) -> Result<()> {
    let device = crate::device::parse(&args.device)?;
    let model = match &args.checkpoint {
        Some(path) => Checkpoint::read(path)?.load_model(path, device)?,
        None => {
            let overrides = args.config.as_deref().map(serde_json::from_str).transpose().context("--config is not JSON")?;
            // The same weights every run, so that runs differ only in what is measured.
            tch::manual_seed(0);
            LoadedModel::new(ModelSpec::new(&args.model, overrides)?, device)?
        }
    };
    let model = model.with_precision(args.precision);
    if let Some(side) = args.scene {
        return scene(&model, device, side, &args.scene_from, args.tile, args.rounds);
    }
    let opts = (Kind::Float, device);
    let n = args.batch_size;
    let s = args.train_size.unwrap_or(args.size);
    let labels = |classes: i64| Tensor::randint(classes, [n, s, s], (Kind::Int64, device));
    let batch = BatchTensors {
        before: Tensor::randn([n, 3, s, s], opts),
        after: Tensor::randn([n, 3, s, s], opts),
        label: Some(labels(2)),
        semantic: model.spec.semantic_classes().map(|k| [labels(k as i64), labels(k as i64)]),
        classes: vec![Default::default(); n as usize],
    };
    let mut recipe = model.spec.reference_recipe(Preset::Generic);
    if recipe.loss.needs_change_fraction() {
        // Random labels: half the pixels changed.
        recipe.loss = recipe.loss.with_change_fraction(0.5);
    }
    let mut optimizer = Adam::with_decay_exemptions(&model.vs, recipe.optimizer, recipe.weight_decay, &recipe.no_decay_keys);
    let mut failure = None;
    let mut train_step = || match model.model.training_loss(&batch, &recipe, EPOCH_AFTER_WARMUP) {
        Ok(loss) => {
            optimizer.zero_grad();
            loss.backward();
            optimizer.step(recipe.lr);
        }
        Err(e) => failure = Some(e),
    };
    let train = time(args.iters, device, &mut train_step);
    let train_profile = args.profile.map(|_| changedet_profile::profile(&mut train_step)).transpose()?.map(|((), p)| p);
    if let Some(e) = failure {
        return Err(e).context("the training step failed");
    }

    // Inference as `predict` runs it (after training, which keeps the default layout).
    model.prepare_for_inference();
    let pairs = args.inference_batch;
    let (before, after) = (Tensor::randn([pairs, 3, args.size, args.size], opts), Tensor::randn([pairs, 3, args.size, args.size], opts));
    let infer_once = || {
        tch::no_grad(|| model.model.forward_t(&before, &after, false));
    };
    let infer = median(time(args.iters, device, infer_once));
    let infer_profile = args.profile.map(|_| changedet_profile::profile(infer_once)).transpose()?.map(|((), p)| p);
    let parity = if device == Device::Cpu { None } else { Some(against_cpu(&model, &before, &after)?) };
    let train = median(train);

    println!("model            {} ({} parameters)", model.spec.name(), model.parameter_count());
    println!("device           {} ({} threads)", changedet_models::device_name(device), tch::get_num_threads());
    println!("input            {0}×{0} pairs; training batch {n} × {s}×{s}; {1} timed runs after 1 warm-up", args.size, args.iters);
    println!("inference        {:.1} ms per pair (median; batches of {pairs}: {:.1} pairs/s)", infer * 1e3 / pairs as f64, pairs as f64 / infer);
    println!("training step    {:.1} ms per batch of {n} (median; {:.1} pairs/s)", train * 1e3, n as f64 / train);
    if let Some(parity) = parity {
        println!("against the CPU  {parity}");
    }
    if let Some(mib) = peak_rss_mib() {
        println!("peak RSS         {mib:.0} MiB");
    }
    if let (Some(rows), Some(infer), Some(train)) = (args.profile, infer_profile, train_profile) {
        println!("profile of one inference (self time per operator, libtorch's profiler)\n{}", infer.table(rows));
        println!("profile of one training step\n{}", train.table(rows));
    }
    Ok(())
}

/// How a model's inference outputs on its device compare with the CPU's.
struct Parity {
    /// Per output: its name and the largest difference relative to the largest CPU value.
    relative_differences: Vec<(&'static str, f64)>,
    /// Share of pixels whose change class (argmax of the change logits) is the same.
    change_agreement: f64,
}

impl std::fmt::Display for Parity {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        for (name, difference) in &self.relative_differences {
            write!(f, "{name} max |Δ| {difference:.1e} of max |x|; ")?;
        }
        write!(f, "change class agrees on {:.4} % of pixels (CPU fp32, same weights and inputs)", 100.0 * self.change_agreement)
    }
}

/// `model`'s inference outputs for `before`/`after` against those of a CPU fp32 copy of its
/// weights, prepared for inference alike: a check of the device's (and precision's) numerics
/// wherever the goldens, which are held to the CPU, cannot travel.
fn against_cpu(model: &LoadedModel, before: &Tensor, after: &Tensor) -> Result<Parity> {
    let mut cpu = LoadedModel::new(model.spec.clone(), Device::Cpu)?;
    cpu.vs.copy(&model.vs)?;
    cpu.prepare_for_inference();
    let outputs = |m: &LoadedModel| {
        let device = m.vs.device();
        let output = tch::no_grad(|| m.model.forward_t(&before.to_device(device), &after.to_device(device), false));
        let mut named = vec![("change logits", output.logits)];
        if let Some([a, b]) = output.semantic {
            named.extend([("before classes", a), ("after classes", b)]);
        }
        named.into_iter().map(|(name, t)| (name, t.to_device(Device::Cpu).to_kind(Kind::Float))).collect::<Vec<_>>()
    };
    let (ours, reference) = (outputs(model), outputs(&cpu));
    let relative_differences = ours
        .iter()
        .zip(&reference)
        .map(|((name, x), (_, y))| (*name, (x - y).abs().max().double_value(&[]) / y.abs().max().double_value(&[]).max(f64::MIN_POSITIVE)))
        .collect();
    let change_agreement = ours[0].1.argmax(1, false).eq_tensor(&reference[0].1.argmax(1, false)).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
    Ok(Parity { relative_differences, change_agreement })
}

/// Median seconds per tile of the model's forward pass over batches of `batch` tiles.
fn model_seconds_per_tile(model: &LoadedModel, device: Device, tile: i64, batch: i64) -> f64 {
    let input = || Tensor::randn([batch, 3, tile, tile], (Kind::Float, device));
    let (before, after) = (input(), input());
    let runs = time(5, device, || {
        tch::no_grad(|| model.model.forward_t(&before, &after, false));
    });
    median(runs) / batch as f64
}

/// The scene benchmark: the pair repeated as a georeferenced SIDE×SIDE mosaic (see
/// `repeat_as_mosaic`), through the scene pipeline, in `rounds` that each time the scene and then
/// the model alone over the same tiles. The machine's speed drifts between runs, so each ratio
/// pairs two measurements made back to back and the median round is reported.
fn scene(model: &LoadedModel, device: Device, side: usize, pair: &[PathBuf], tile: usize, rounds: usize) -> Result<()> {
    anyhow::ensure!(pair.len() == 2, "--scene-from takes two images, BEFORE,AFTER");
    let dir = tempfile::tempdir()?;
    let before = changedet_raster::geo::repeat_as_mosaic(&pair[0], side, dir.path(), "before")?;
    let after = changedet_raster::geo::repeat_as_mosaic(&pair[1], side, dir.path(), "after")?;
    let job = changedet_scene::SceneJob {
        tile,
        overwrite: true,
        ..changedet_scene::SceneJob::new(vec![before], vec![after], dir.path().join("out"))
    };
    model.prepare_for_inference();
    let plan = changedet_raster::tiling::TilePlan::new(side, side, tile, job.overlap, job.block_strides).map_err(anyhow::Error::msg)?;
    let mut measured = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let summary = changedet_scene::predict_scene(model, device, &job)?;
        let model_alone = model_seconds_per_tile(model, device, tile as i64, job.batch_size as i64) * plan.tile_count() as f64;
        measured.push((model_alone / summary.seconds, summary, model_alone));
    }
    let ratios: Vec<String> = measured.iter().map(|(ratio, ..)| format!("{ratio:.2}")).collect();
    measured.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (ratio, summary, model_alone) = &measured[measured.len() / 2];
    let megapixels = (side * side) as f64 / 1e6;
    println!("model            {} ({} parameters)", model.spec.name(), model.parameter_count());
    println!("device           {} ({} threads)", changedet_models::device_name(device), tch::get_num_threads());
    println!("scene            {side}×{side} px pair, tiles {tile} px, overlap {} px, blocks of {} strides", job.overlap, job.block_strides);
    println!("rounds           {rounds}, each the scene then the model alone; the median round:");
    println!("run              {summary}");
    println!("throughput       {:.2} Mpx/s (reading, inference, blending, writing and COG conversion)", summary.megapixels_per_second());
    println!("stages           {}", summary.stages);
    println!(
        "model alone      {:.2} Mpx/s ({model_alone:.1} s for the scene's {} tiles, batches of {})",
        megapixels / model_alone,
        plan.tile_count(),
        job.batch_size,
    );
    println!("pipeline / model {ratio:.2} (median; rounds in order: {})", ratios.join(", "));
    if let Some(mib) = peak_rss_mib() {
        println!("peak RSS         {mib:.0} MiB");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use changedet_models::Precision;

    fn model(name: &str) -> LoadedModel {
        tch::manual_seed(0);
        LoadedModel::new(ModelSpec::new(name, None).unwrap(), Device::Cpu).unwrap()
    }

    /// The comparison sees no difference between a model and its own weights on the CPU, and
    /// sees bf16's rounding when there is: measured 8.0e-3 (FC-Siam-diff, the default model) and
    /// 2.4e-2 (ClearSCD's change logits, the semantic model) of the largest output, change classes
    /// the same on 99.80 % and 100 % of the pixels (untrained weights: many near ties), within the
    /// bounds of `tests/precision.rs`.
    #[test]
    fn against_cpu_measures_the_difference_of_outputs() {
        let input = || Tensor::randn([2, 3, 64, 64], (Kind::Float, Device::Cpu));
        let (before, after) = (input(), input());
        let semantic = changedet_models::MODEL_NAMES.iter().find(|name| ModelSpec::new(name, None).unwrap().semantic_classes().is_some());
        for name in [changedet_models::DEFAULT_MODEL, semantic.expect("a semantic change model")] {
            let fp32 = model(name);
            fp32.prepare_for_inference();
            let same = against_cpu(&fp32, &before, &after).unwrap();
            let outputs = if fp32.spec.semantic_classes().is_some() { 3 } else { 1 };
            assert_eq!(same.relative_differences.len(), outputs);
            assert!(same.relative_differences.iter().all(|(_, d)| *d == 0.0), "{same}");
            assert_eq!(same.change_agreement, 1.0);

            let bf16 = model(name).with_precision(Precision::Bf16);
            bf16.prepare_for_inference();
            let rounded = against_cpu(&bf16, &before, &after).unwrap();
            assert!(rounded.relative_differences.iter().all(|(_, d)| *d > 0.0 && *d < 0.05), "{rounded}");
            assert!(rounded.change_agreement > 0.95 && rounded.change_agreement <= 1.0, "{rounded}");
        }
    }
}
