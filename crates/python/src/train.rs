//! `changedet.train()`: the library's training run (`TrainRequest`, as `changedet train` makes
//! it) from Python options, reporting to a Python callback, stopped by Ctrl-C between steps.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use pyo3::types::PyDict;

use changedet_train::{TrainEvent, TrainRequest};

use crate::errors::{Failure, input};
use crate::options::Options;

/// Trains as `changedet train` does; `options` (JSON) holds the CLI's options by their Python
/// names. `callback(event: dict) -> bool | None` hears every step and validation; False stops.
/// Returns the summary as JSON.
#[pyfunction]
#[pyo3(signature = (out, options, callback=None))]
pub fn train(py: Python<'_>, out: PathBuf, options: &str, callback: Option<Py<PyAny>>) -> PyResult<String> {
    let mut request = request(out, Options::parse("training", options)?)?;
    // The first Python exception of the callback (or Ctrl-C), raised once the run has stopped.
    let raised: Arc<Mutex<Option<PyErr>>> = Arc::default();
    let hook_raised = Arc::clone(&raised);
    request.on_step = Some(Box::new(move |event| Python::attach(|py| hear(py, &event, callback.as_ref()).unwrap_or_else(|e| {
        hook_raised.lock().expect("not poisoned").get_or_insert(e);
        false
    }))));
    let summary = py.detach(move || {
        let job = request.into_job()?;
        Ok::<_, Failure>(changedet_train::train(job)?)
    })?;
    if let Some(e) = raised.lock().expect("not poisoned").take() {
        return Err(e);
    }
    let out = serde_json::json!({
        "epochs": summary.epochs,
        "steps": summary.steps,
        "best_score": summary.best_score,
        "out": summary.out_dir,
        "plot": summary.plot,
    });
    Ok(out.to_string())
}

/// Tells the callback of `event` and checks for Ctrl-C; Ok(false) asks the run to stop.
fn hear(py: Python<'_>, event: &TrainEvent<'_>, callback: Option<&Py<PyAny>>) -> PyResult<bool> {
    py.check_signals()?;
    let Some(callback) = callback else { return Ok(true) };
    let dict = PyDict::new(py);
    match event {
        TrainEvent::Step { step, total_steps, epoch, epochs, loss, lr } => {
            dict.set_item("kind", "step")?;
            dict.set_item("step", step)?;
            dict.set_item("total_steps", total_steps)?;
            dict.set_item("epoch", epoch)?;
            dict.set_item("epochs", epochs)?;
            dict.set_item("loss", loss)?;
            dict.set_item("lr", lr)?;
        }
        TrainEvent::Validation { entry, line } => {
            dict.set_item("kind", "validation")?;
            dict.set_item("line", line)?;
            dict.set_item("entry", serde_json::to_string(entry).expect("log entries serialise"))?;
        }
    }
    let answer = callback.call1(py, (dict,))?;
    Ok(answer.is_none(py) || answer.is_truthy(py)?)
}

/// The request `options` describe, each option parsed as the CLI parses it.
fn request(out: PathBuf, mut options: Options) -> PyResult<TrainRequest> {
    let mut request = TrainRequest::new(out);
    if let Some(model) = options.text("model")? {
        request.model = model;
    }
    request.model_config = options.take("config");
    if let Some(datasets) = options.texts("datasets")? {
        request.datasets = datasets.iter().map(|d| d.parse().map_err(|e| input(format!("dataset '{d}': {e}")))).collect::<PyResult<_>>()?;
    }
    if let Some(splits) = options.texts("train_split")? {
        request.train_splits = splits;
    }
    if let Some(splits) = options.texts("val_split")? {
        request.val_splits = splits;
    }
    if let Some(bands) = options.texts("bands")? {
        request.bands = Some(changedet_raster::geo::sentinel2::parse_bands(&bands.join(",")).map_err(|e| input(format!("bands: {e}")))?);
    }
    request.epochs = options.count("epochs")?;
    request.iterations = options.count("iterations")?;
    request.val_every = options.count("val_every")?;
    request.best_by = options.parsed("best_by")?;
    request.batch_size = options.count("batch_size")?;
    request.crop = options.number("crop")?;
    request.patches = options.parsed("patches")?;
    request.lr = options.real("lr")?;
    request.weight_decay = options.real("weight_decay")?;
    request.optimizer = options.parsed("optimizer")?;
    request.schedule = options.parsed("schedule")?;
    request.loss = options.parsed("loss")?;
    request.no_augment = options.flag("augment")?.is_some_and(|augment| !augment);
    request.seed = options.number("seed")?;
    request.checkpoint_every = options.number("checkpoint_every")?;
    request.eval_batch_size = options.count("eval_batch_size")?;
    request.ignore_value = options.number("ignore_value")?;
    request.resume = options.flag("resume")?.unwrap_or(false);
    request.overwrite = options.flag("overwrite")?.unwrap_or(false);
    request.max_steps = options.number("max_steps")?;
    request.clip = options.text("clip")?.map(PathBuf::from);
    request.from = options.text("from")?.map(PathBuf::from);
    request.precision = options.parsed("precision")?.unwrap_or(request.precision);
    if let Some(device) = options.text("device")? {
        request.device = crate::model::device(&device)?;
    }
    options.finish()?;
    Ok(request)
}
