use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;

use changedet_models::Checkpoint;
use changedet_train::TrainingState;

/// Show what a checkpoint holds: model, configuration, size and training state.
#[derive(Parser)]
pub struct Args {
    checkpoint: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let checkpoint = Checkpoint::read(&args.checkpoint)?;
    let model = checkpoint.load_model(&args.checkpoint, tch::Device::Cpu)?;
    println!("checkpoint   {}", args.checkpoint.display());
    println!("model        {}", model.spec.name());
    println!("parameters   {}", model.parameter_count());
    println!("tensors      {} model, {} optimiser", checkpoint.model.len(), checkpoint.optimizer.len());
    println!("config       {}", serde_json::to_string_pretty(&model.spec.config_json())?);
    match checkpoint.training.map(serde_json::from_value::<TrainingState>) {
        Some(Ok(state)) => {
            println!("trained      {} epochs, {} steps", state.epoch, state.step);
            if let (Some(score), Some(epoch)) = (state.best_score, state.best_epoch) {
                println!("best val {:<4}{score:.4} (epoch {epoch})", state.recipe.best_by.name());
            }
            if let Some(m) = state.val_metrics {
                let rows: Vec<String> = m.rows().iter().map(|(k, v)| format!("{k} {v:.4}")).collect();
                println!("last val     {}", rows.join(", "));
            }
            println!("recipe       {}", serde_json::to_string(&state.recipe)?);
        }
        Some(Err(e)) => println!("training     (unreadable: {e})"),
        None => println!("training     (none recorded)"),
    }
    Ok(())
}
