use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use tch::Tensor;

use changedet_data::class_lists::{self, ImageClasses};
use changedet_data::{Dataset, DatasetSpec};
use changedet_models::clip::{REMOTE_SENSING_CLASSES, ZeroShot, zero_shot};

/// ChangeCLIP's zero-shot pre-pass: score every image of a dataset against class names with CLIP
/// and write the per-folder class lists ChangeCLIP builds its prompts from.
///
/// For each split and date folder (e.g. test/A) it writes `test/A_clipcls_<tag>.json` in the
/// reference's layout: one object per image, `image_path` (absolute) then every class with its
/// probability, most probable first. ChangeCLIP (`train --model changeclip-*`) reads the first 9.
/// The reference scores the 56 remote-sensing classes with OpenAI's CLIP ViT-B/16.
#[derive(Parser)]
pub struct Args {
    /// CLIP weights: OpenAI's TorchScript (ViT-B-16.pt, RN50.pt), an open_clip or Hugging Face
    /// state dict (.pth, .bin, .safetensors).
    #[arg(long)]
    pub clip: PathBuf,
    /// Dataset as NAME:PATH or a bare PATH.
    #[arg(long)]
    dataset: DatasetSpec,
    /// Splits, comma-separated [default: those of train, val, test the dataset has, else all pairs].
    #[arg(long, value_delimiter = ',')]
    splits: Option<Vec<String>>,
    /// Class names, one per line (text before the first ", ", as in ChangeCLIP's rscls.txt)
    /// [default: its 56 remote-sensing classes].
    #[arg(long)]
    classes: Option<PathBuf>,
    /// File name tag: FOLDER_clipcls_TAG.json.
    #[arg(long, default_value = class_lists::DEFAULT_TAG)]
    tag: String,
    /// Images per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Write the JSON files under this folder (same relative paths) instead of beside the images.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace existing class-list files.
    #[arg(long)]
    overwrite: bool,
    #[command(flatten)]
    pub text: TextArgs,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

#[derive(clap::Args)]
pub struct TextArgs {
    /// CLIP BPE vocabulary (bpe_simple_vocab_16e6.txt.gz) [default: $CHANGEDET_CLIP_VOCAB, then
    /// the copy scripts/setup.sh caches].
    #[arg(long)]
    pub vocab: Option<PathBuf>,
}

/// Loads CLIP and embeds `classes`.
pub fn zero_shot(clip: &Path, text: &TextArgs, device: &str, classes: Vec<String>) -> Result<ZeroShot> {
    let device = crate::device::parse(device)?;
    let tokenizer = changedet_models::clip::Tokenizer::find(text.vocab.as_deref())?;
    let (model, skipped) = changedet_models::clip::Clip::load(clip, device)?;
    for (key, why) in &skipped {
        tracing::debug!("{}: skipped {key}: {why}", clip.display());
    }
    Ok(ZeroShot::new(model, &tokenizer, classes))
}

fn read_class_names(path: Option<&Path>) -> Result<Vec<String>> {
    let Some(path) = path else { return Ok(REMOTE_SENSING_CLASSES.map(String::from).to_vec()) };
    let text = std::fs::read_to_string(path).with_context(|| format!("{}: cannot read the class names", path.display()))?;
    let names: Vec<String> = text.lines().map(|l| l.trim().split(", ").next().unwrap_or("").to_owned()).filter(|n| !n.is_empty()).collect();
    if names.is_empty() {
        bail!("{}: no class names", path.display());
    }
    Ok(names)
}

pub fn run(args: Args) -> Result<()> {
    let classes = read_class_names(args.classes.as_deref())?;
    let zero_shot = zero_shot(&args.clip, &args.text, &args.device, classes)?;
    let resolution = zero_shot.clip.input_resolution() as u32;
    let started = Instant::now();
    let mut written = 0;
    for dataset in open_splits(&args)? {
        // One list per image folder, as the reference writes them (before and after dates).
        let mut folders: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
        for image in dataset.pairs.iter().flat_map(|p| [&p.before, &p.after]) {
            let image = std::path::absolute(image)?;
            let folder = image.parent().context("image without a folder")?.to_owned();
            match folders.iter_mut().find(|(f, _)| *f == folder) {
                Some((_, images)) => images.push(image),
                None => folders.push((folder, vec![image])),
            }
        }
        for (folder, images) in folders {
            let target = class_lists::json_path(&output_folder(&args, &folder)?, &args.tag);
            changedet_raster::atomic::check_replaceable([&target], args.overwrite).map_err(anyhow::Error::msg)?;
            let entries = score_folder(&zero_shot, &images, resolution, args.batch_size, &folder)?;
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir)?;
            }
            changedet_raster::atomic::write_bytes(&target, &class_lists::to_json(&entries)).with_context(|| format!("{}: cannot write", target.display()))?;
            println!("{}: {} images", target.display(), entries.len());
            written += 1;
        }
    }
    println!("{written} class-list file(s) in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The splits asked for, or those of train/val/test the dataset has, or else all its pairs.
fn open_splits(args: &Args) -> Result<Vec<Dataset>> {
    if let Some(splits) = &args.splits {
        return splits.iter().map(|s| Ok(Dataset::open(&args.dataset, s, false, None)?)).collect();
    }
    let found: Vec<Dataset> = ["train", "val", "test"].iter().filter_map(|s| Dataset::open(&args.dataset, s, false, None).ok()).collect();
    if !found.is_empty() {
        return Ok(found);
    }
    Ok(vec![Dataset::open(&args.dataset, "all", false, None).with_context(|| format!("{}: no train/val/test split and no pairs", args.dataset.root.display()))?])
}

/// Where `folder`'s list goes: beside it, or at the same path relative to the dataset under --out.
fn output_folder(args: &Args, folder: &Path) -> Result<PathBuf> {
    let Some(out) = &args.out else { return Ok(folder.to_owned()) };
    let root = std::path::absolute(&args.dataset.root)?;
    let relative = folder.strip_prefix(&root).unwrap_or(folder.file_name().map(Path::new).unwrap_or(folder));
    Ok(out.join(relative))
}

fn score_folder(zero_shot: &ZeroShot, images: &[PathBuf], resolution: u32, batch_size: usize, folder: &Path) -> Result<Vec<ImageClasses>> {
    let bar = ProgressBar::new(images.len() as u64).with_message(folder.display().to_string());
    bar.set_style(ProgressStyle::with_template("{msg} {bar:30} {pos}/{len} images, {eta} left").expect("static template"));
    let mut entries = Vec::with_capacity(images.len());
    for chunk in images.chunks(batch_size.max(1)) {
        let pixels: Vec<Tensor> = chunk.par_iter().map(|path| Ok(zero_shot::preprocess(&read_rgb(path)?, resolution))).collect::<Result<_>>()?;
        let (_, probabilities) = zero_shot.scores(&Tensor::stack(&pixels, 0));
        for (i, path) in chunk.iter().enumerate() {
            let row = Vec::<f32>::try_from(probabilities.get(i as i64))?;
            entries.push(ImageClasses::from_probabilities(path.to_string_lossy().into_owned(), &zero_shot.classes, &row));
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    Ok(entries)
}

pub fn read_rgb(path: &Path) -> Result<image::RgbImage> {
    let raster = changedet_raster::read_rgb(path)?;
    let (w, h) = raster.size();
    image::RgbImage::from_raw(w, h, raster.data).with_context(|| format!("{}: not an RGB image", path.display()))
}
