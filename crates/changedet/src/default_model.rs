//! The model `predict` and `eval` use: --checkpoint, or the shipped default model
//! (`changedet_models::default_model`), saying which.

use std::path::Path;

use anyhow::{Context, Result};

pub use changedet_models::default_model::Loaded;

/// The checkpoint at `given`, or the default model, saying so.
pub fn load(given: Option<&Path>, device: tch::Device) -> Result<Loaded> {
    let path = match given {
        Some(path) => path.to_owned(),
        None => {
            let path = changedet_models::default_model::locate().context("no --checkpoint given")?;
            eprintln!("using the default model {} (`changedet info` describes it; --checkpoint picks another)", path.display());
            path
        }
    };
    Ok(changedet_models::default_model::load(&path, device)?)
}
