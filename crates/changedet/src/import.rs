use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Parser;
use serde_json::Value;
use tch::Device;

use changedet_models::import::{import, read_state_dict};
use changedet_models::{Checkpoint, ModelSpec};

/// Convert a reference implementation's PyTorch checkpoint into a changedet checkpoint.
///
/// Reads `torch.save` files (.pth, .pth.tar, .pt; a state dict, possibly under `state_dict`)
/// without running any of their pickled code (a file that would call anything but tensor
/// reconstruction is refused), or safetensors files. Sizes the reference lets vary (number of
/// classes, queue length) are taken from the tensor shapes; --config overrides the rest. Every
/// model variable must be present with its shape; entries the reference stores but never uses
/// are listed.
#[derive(Parser)]
pub struct Args {
    /// The PyTorch checkpoint (for ChangeCLIP an mmseg checkpoint, weights under `state_dict`).
    src: PathBuf,
    /// Model the checkpoint belongs to (clearscd, changeclip-rn50, changeclip-vit).
    #[arg(long)]
    model: String,
    /// Configuration overrides as a JSON object, merged field by field (e.g. '{"num_classes": 6}',
    /// or for a ChangeCLIP whose text tower's head width is not CLIP's 64:
    /// '{"text": {"heads": 2}}').
    #[arg(long)]
    config: Option<String>,
    /// The changedet checkpoint to write.
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing --out file.
    #[arg(long)]
    overwrite: bool,
}

pub fn run(args: Args) -> Result<()> {
    changedet_raster::atomic::check_replaceable([&args.out], args.overwrite).map_err(anyhow::Error::msg)?;
    let state_dict = read_state_dict(&args.src)?;
    let overrides = match &args.config {
        Some(text) => match serde_json::from_str(text).context("--config is not a JSON object")? {
            Value::Object(overrides) => Some(Value::Object(overrides)),
            _ => anyhow::bail!("--config must be a JSON object"),
        },
        None => None,
    };
    let spec = ModelSpec::for_reference_state_dict(&args.model, &state_dict, &args.src, overrides)?;
    let (model, report) = import(spec, state_dict, &args.src, Device::Cpu)?;
    Checkpoint::write(&args.out, &model, &[], None).with_context(|| format!("{}: cannot write the checkpoint", args.out.display()))?;
    println!("{} imported from {}: {} variables ({} parameters)", model.spec.name(), args.src.display(), model.vs.variables().len(), model.parameter_count());
    if !report.skipped.is_empty() {
        println!("{} entries not imported:", report.skipped.len());
        let mut by_reason: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for (key, why) in &report.skipped {
            by_reason.entry(why).or_default().push(key);
        }
        for (why, keys) in by_reason {
            println!("  {} × {why} (e.g. {})", keys.len(), keys[0]);
        }
    }
    println!("written to {}", args.out.display());
    Ok(())
}
