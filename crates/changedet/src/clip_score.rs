use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Parser;
use serde_json::json;
use tch::Tensor;

use changedet_models::clip::zero_shot;

use crate::clip_classes::{TextArgs, read_rgb};

/// Zero-shot CLIP scores of images against texts: cosine similarity of the embeddings and
/// `softmax(logit_scale · cos)` over the texts, per image.
#[derive(Parser)]
pub struct Args {
    /// Images to score.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// CLIP weights (any layout `clip-classes` reads).
    #[arg(long)]
    clip: PathBuf,
    /// A text to score against; repeat for several.
    #[arg(long = "text", required = true)]
    texts: Vec<String>,
    /// Also write the scores as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    text: TextArgs,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
}

pub fn run(args: Args) -> Result<()> {
    if args.texts.len() < 2 {
        tracing::warn!("with one text every probability is 1; give several --text to compare");
    }
    let zero_shot = crate::clip_classes::zero_shot(&args.clip, &args.text, &args.device, args.texts.clone())?;
    let resolution = zero_shot.clip.input_resolution() as u32;
    let pixels: Vec<Tensor> = args.images.iter().map(|p| Ok(zero_shot::preprocess(&read_rgb(p)?, resolution))).collect::<Result<_>>()?;
    let (cosine, probability) = zero_shot.scores(&Tensor::stack(&pixels, 0));
    if probability.isnan().any().int64_value(&[]) != 0 {
        bail!("{}: the model produced NaN scores (corrupt weights?)", args.clip.display());
    }
    let width = args.texts.iter().map(|t| t.chars().count()).max().unwrap_or(4).clamp(4, 60);
    let mut report = Vec::new();
    for (i, image) in args.images.iter().enumerate() {
        println!("{}", image.display());
        println!("  {:<width$} {:>11} {:>8}", "text", "probability", "cosine");
        let (p, c) = (Vec::<f32>::try_from(probability.get(i as i64))?, Vec::<f32>::try_from(cosine.get(i as i64))?);
        let mut order: Vec<usize> = (0..args.texts.len()).collect();
        order.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
        for &t in &order {
            println!("  {:<width$} {:>11.4} {:>8.4}", args.texts[t], p[t], c[t]);
        }
        report.push(json!({
            "image": image,
            "scores": order.iter().map(|&t| json!({ "text": args.texts[t], "probability": p[t], "cosine": c[t] })).collect::<Vec<_>>(),
        }));
    }
    if let Some(path) = &args.json {
        changedet_raster::atomic::write_bytes(path, serde_json::to_string_pretty(&json!({ "clip": args.clip, "images": report }))?.as_bytes())?;
    }
    Ok(())
}
