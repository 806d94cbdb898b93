//! `changedet`: the command line. Each sub-command lives in its own module and only wires
//! arguments to the library crates.

mod allocator;
mod bench;
mod clip_classes;
mod clip_score;
mod default_model;
mod device;
mod eval;
mod import;
mod info;
mod interrupt;
mod metrics;
mod predict;
mod prepare;
mod scene;
mod train;
mod values;
mod view;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Deep-learning change detection for remote-sensing image pairs.
///
/// A typical session: train a model on a dataset, evaluate its checkpoint on the test split,
/// then predict change maps for new pairs. Checkpoints carry the model name and configuration,
/// so `eval`, `predict`, `info` and `bench` need nothing but the checkpoint file.
///
/// Datasets are given as NAME:PATH, where NAME is a preset (levir-cd, levir-cd-plus, whu-cd,
/// dsifn-cd, oscd, airchange, sysu-cd, cdd, generic, hiucd, second) and PATH the dataset's root
/// folder. `predict` and `eval` use the shipped default model when --checkpoint is left out.
#[derive(Parser)]
#[command(name = "changedet", version, about, long_about, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// CPU threads for computing: libtorch's kernels and the parallel image decoding and scoring
    /// (default: all cores). Fewer leave cores to other work (results agree up to float rounding).
    #[arg(long, global = true, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
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
    View(view::Args),
}

fn main() -> ExitCode {
    if std::env::var_os("KINETO_LOG_LEVEL").is_none() {
        // libtorch's profiler (`bench --profile`) logs each start and stop, and on a machine
        // without a GPU an error about it, on stderr; above its highest level it keeps quiet.
        // SAFETY: no other thread exists yet to read the environment concurrently.
        unsafe { std::env::set_var("KINETO_LOG_LEVEL", "6") };
    }
    allocator::refuse_impossible_allocations();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CHANGEDET_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        // Colour codes only where a person reads a terminal, never in redirected logs.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .with_target(false)
        .init();
    let cli = Cli::parse();
    interrupt::install();
    if let Some(threads) = cli.threads {
        tch::set_num_threads(threads.into());
        tch::set_num_interop_threads(threads.into());
        // Only fails if a pool already exists, which nothing has made yet.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(threads.into()).build_global();
    }
    let command = cli.command;
    // libtorch reports errors (out of memory, shapes it rejects) as panics of tch's calls: they
    // end the command with one line of error, as any other failure does.
    let first_panic = std::sync::Arc::new(std::sync::Mutex::new(None::<String>));
    let recorded = first_panic.clone();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload().downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| info.payload().downcast_ref::<String>().cloned());
        let mut slot = recorded.lock().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert_with(|| format!("{} (at {})", message.unwrap_or_default(), info.location().map(|l| l.to_string()).unwrap_or_default()));
    }));
    let result = std::panic::catch_unwind(|| run(command)).unwrap_or_else(|_| {
        let message = first_panic.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_default();
        Err(anyhow::anyhow!(explain_panic(&message)))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", changedet_raster::text::error_line(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// One line for a panic: libtorch's own message with the likely remedy, or an internal error.
fn explain_panic(message: &str) -> String {
    match libtorch_message(message) {
        Some(torch) if torch.to_lowercase().contains("memory") => {
            format!("out of memory ({torch}): try a smaller --batch-size, --tile or image size, or the CPU")
        }
        Some(torch) => format!("libtorch refused an operation: {torch}"),
        None => format!("internal error: {message}; please report it (RUST_BACKTRACE=1 shows where)"),
    }
}

/// The first line of a libtorch error in a panic of tch (`…Torch("[enforce fail at …] MESSAGE\nframe #0…")`),
/// without its source location and stack frames.
fn libtorch_message(message: &str) -> Option<String> {
    let start = message.find("Torch(\"")? + "Torch(\"".len();
    let text = &message[start..];
    let end = [text.find("\\n"), text.find('\n'), text.find("\")")].into_iter().flatten().min().unwrap_or(text.len());
    let text = text[..end].trim();
    // "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: …" → the part after the check.
    let text = match text.strip_prefix("[enforce fail at").and_then(|rest| rest.split_once("] ")) {
        Some((_, rest)) => rest.split_once(". ").map_or(rest, |(_, after)| after),
        None => text,
    };
    Some(text.to_owned())
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Merge(args) => scene::merge(args),
        Command::Info(args) => info::run(args),
        Command::View(args) => view::run(args),
        Command::Import(args) => import::run(args),
        Command::Prepare(args) => prepare::run(args),
        Command::Metrics(args) => metrics::run(args),
        Command::Bench(args) => bench::run(args),
        Command::ClipClasses(args) => clip_classes::run(args),
        Command::ClipScore(args) => clip_score::run(args),
    }
}
