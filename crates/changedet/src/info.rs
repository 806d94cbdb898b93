use changedet_raster::text::count;
use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;

use changedet_models::{Checkpoint, Decision, MODEL_NAMES, ModelSpec};
use changedet_train::TrainingState;

/// Show what a checkpoint holds (model, configuration, size and training state), or with
/// --models the models changedet can build.
#[derive(Parser)]
pub struct Args {
    #[arg(required_unless_present = "models")]
    checkpoint: Option<PathBuf>,
    /// List every model: its paper, what it is and what it outputs.
    #[arg(long, conflicts_with = "checkpoint")]
    models: bool,
}

pub fn run(args: Args) -> Result<()> {
    match &args.checkpoint {
        Some(path) => checkpoint(path),
        None => models(),
    }
}

fn models() -> Result<()> {
    for &name in MODEL_NAMES {
        let spec = ModelSpec::new(name, None)?;
        let card = spec.config().card();
        let outputs = match spec.semantic_classes() {
            Some(k) => format!("change and {k} land-cover classes per date"),
            None => "change".to_owned(),
        };
        println!("{name}\n  {}\n  outputs: {outputs}\n  paper: {}\n", card.summary, card.paper);
    }
    Ok(())
}

fn checkpoint(path: &std::path::Path) -> Result<()> {
    let checkpoint = Checkpoint::read(path)?;
    let model = checkpoint.load_model(path, tch::Device::Cpu)?;
    println!("checkpoint   {}", path.display());
    println!("model        {} ({})", model.spec.name(), model.spec.config().card().summary);
    println!("parameters   {}", model.parameter_count());
    println!("tensors      {} model, {} optimiser", checkpoint.model.len(), checkpoint.optimizer.len());
    println!("config       {}", serde_json::to_string_pretty(&model.spec.config_json())?);
    match &model.decision {
        Some(Decision { threshold, chosen_on: Some(on) }) => println!("threshold    {threshold}: best F1 on {on} (`--threshold` overrides it)"),
        other => println!("threshold    {} (`eval --choose-threshold` chooses one on a validation split)", Decision::describe(other.as_ref())),
    }
    match checkpoint.training.map(serde_json::from_value::<TrainingState>) {
        Some(Ok(state)) => {
            println!("trained      {}, {}, {:.0} s", count(state.epoch as u64, "epoch"), count(state.step as u64, "step"), state.seconds);
            for source in &state.data {
                println!("data         {source}");
            }
            let bands = state.bands.as_ref().map_or_else(|| "RGB (8-bit images)".to_owned(), |b| format!("{} (Sentinel-2, read by name from band folders)", b.join(",")));
            println!("input bands  {bands}, normalisation {}", serde_json::to_string(&model.spec.normalization())?);
            if let (Some(score), Some(epoch)) = (state.best_score, state.best_epoch) {
                println!("best val {:<4}{score:.4} (epoch {epoch})", state.recipe.best_by.name());
            }
            if let Some(m) = state.val_metrics {
                let rows: Vec<String> = m.rows().iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
                println!("last val     {}", rows.join(", "));
            }
            if let Some(s) = state.val_semantic {
                println!("last val SCD oa {:.4}, miou {:.4}, sek {:.4}, fscd {:.4}, score {:.4} (SECOND convention)", s.oa, s.miou, s.sek, s.fscd, s.score);
            }
            println!("recipe       {}", serde_json::to_string(&state.recipe)?);
        }
        Some(Err(e)) => println!("training     (unreadable: {e})"),
        None => println!("training     (none recorded)"),
    }
    print_recorded_scores(path);
    Ok(())
}

/// Scores the retraining scripts record beside a shipped checkpoint (`NAME.json`: an `eval
/// --json` report, or one per domain by name).
fn print_recorded_scores(checkpoint: &std::path::Path) {
    let sidecar = checkpoint.with_extension("json");
    let Some(report) = std::fs::read_to_string(&sidecar).ok().and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok()) else { return };
    let reports: Vec<(String, &serde_json::Value)> = match report.get("metrics") {
        Some(_) => vec![(report["split"].as_str().unwrap_or("evaluation").to_owned(), &report)],
        None => report.as_object().map(|o| o.iter().map(|(k, v)| (k.clone(), v)).collect()).unwrap_or_default(),
    };
    println!("scores       recorded in {} (whole images, TP/FP/FN summed per line):", sidecar.display());
    for (name, r) in reports {
        let m = &r["metrics"];
        let value = |k: &str| m[k].as_f64().unwrap_or(f64::NAN);
        println!("  {name:<32} pairs {:>3}  P {:.3}  R {:.3}  F1 {:.3}  IoU {:.3}", r["pairs"], value("precision"), value("recall"), value("f1"), value("iou"));
    }
}
