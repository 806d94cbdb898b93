//! `changedet`: the command line. Each sub-command lives in its own module and only wires
//! arguments to the library crates.

mod bench;
mod clip_classes;
mod clip_score;
mod device;
mod eval;
mod import;
mod info;
mod metrics;
mod predict;
mod prepare;
mod scene;
mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Deep-learning change detection for remote-sensing image pairs.
///
/// A typical session: train a model on a dataset, evaluate its checkpoint on the test split,
/// then predict change maps for new pairs. Checkpoints carry the model name and configuration,
/// so `eval`, `predict`, `info` and `bench` need nothing but the checkpoint file.
///
/// Datasets are given as NAME:PATH, where NAME is a preset (levir-cd, levir-cd-plus, whu-cd,
/// dsifn-cd, sysu-cd, cdd, generic) and PATH the dataset's root folder.
#[derive(Parser)]
#[command(name = "changedet", version, about, long_about, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "Examples:
  changedet train --model fc-siam-diff --dataset levir-cd:/data/LEVIR-CD --out runs/levir
  changedet eval --checkpoint runs/levir/best.safetensors --dataset levir-cd:/data/LEVIR-CD --split test
  changedet predict --checkpoint runs/levir/best.safetensors --before t1.png --after t2.png --out maps/
  changedet predict --checkpoint best.safetensors --before 2019.tif --after 2023.tif --bands 3,2,1 --vector changes.gpkg --out scene/
  changedet merge shard-1/ shard-2/ shard-3/ --out scene/
  changedet info runs/levir/best.safetensors
  changedet import checkpoint.pth.tar --model clearscd --out clearscd-hiucd.safetensors
  changedet prepare hiucd /data/Hi-UCD-mini --out /data/hiucd-prepared
  changedet metrics --pred maps/ --gt labels/ --convention all --json scores.json
  changedet clip-classes --clip ViT-B-16.pt --dataset levir-cd:/data/LEVIR-CD
  changedet clip-score --clip ViT-B-16.pt scene.png --text \"a building\" --text \"farmland\"";

#[derive(Subcommand)]
enum Command {
    Train(train::Args),
    Eval(eval::Args),
    Predict(predict::Args),
    Merge(scene::MergeArgs),
    Info(info::Args),
    Import(import::Args),
    Prepare(prepare::Args),
    Metrics(metrics::Args),
    Bench(bench::Args),
    ClipClasses(clip_classes::Args),
    ClipScore(clip_score::Args),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CHANGEDET_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .init();
    let result = match Cli::parse().command {
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Merge(args) => scene::merge(args),
        Command::Info(args) => info::run(args),
        Command::Import(args) => import::run(args),
        Command::Prepare(args) => prepare::run(args),
        Command::Metrics(args) => metrics::run(args),
        Command::Bench(args) => bench::run(args),
        Command::ClipClasses(args) => clip_classes::run(args),
        Command::ClipScore(args) => clip_score::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
