//! `changedet.Model`: a model of the models crate (loaded, created or imported) that predicts
//! pairs held in memory and lends its parameters to PyTorch's autograd.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::Value;
use tch::{Device, Kind, Tensor};

use changedet_data::{Batch, Dataset, DatasetSpec, Image, PairSample};
use changedet_models::import::{import, read_state_dict};
use changedet_models::{Checkpoint, LoadedModel, ModelSpec, default_model};
use changedet_raster::Raster;
use changedet_train::{PairPrediction, Protocol};

use changedet_raster::geo::PolygonOptions;
use changedet_scene::{SceneJob, VectorOutput};

use crate::bridge;
use crate::errors::{Failure, input};
use crate::options::Options;

struct State {
    loaded: LoadedModel,
    /// Readied for inference (`prepare_for_inference`), which holds until the weights change.
    frozen: bool,
    /// Its parameters were handed to Python, which may change them at any time: never frozen.
    lent: bool,
    path: Option<PathBuf>,
    training: Option<Value>,
    bands: Option<Vec<String>>,
}

#[pyclass(module = "changedet._native", name = "Model", frozen)]
pub struct Model {
    // Models are Send but not Sync; the lock lets threads share one (they take turns on it, not
    // on the GIL, which every computation releases).
    state: Mutex<State>,
}

/// `cpu` or `cuda:N`, as the package writes `torch.device`s.
pub(crate) fn device(name: &str) -> PyResult<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        other => other.strip_prefix("cuda:").and_then(|n| n.parse().ok()).map(Device::Cuda).ok_or_else(|| input(format!("unknown device '{other}'"))),
    }
}

fn config_overrides(config: Option<&str>) -> Result<Option<Value>, Failure> {
    match config.map(serde_json::from_str::<Value>) {
        None => Ok(None),
        Some(Ok(Value::Object(map))) => Ok(Some(Value::Object(map))),
        Some(_) => Err(Failure::input("the configuration must be a JSON object (a dict)")),
    }
}

impl Model {
    fn new(loaded: LoadedModel, path: Option<PathBuf>, training: Option<Value>, bands: Option<Vec<String>>) -> Self {
        Model { state: Mutex::new(State { loaded, frozen: false, lent: false, path, training, bands }) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic inside a computation leaves the model as it was before it: keep using it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[pymethods]
impl Model {
    /// A changedet checkpoint, or the shipped default model when `path` is None.
    #[staticmethod]
    #[pyo3(signature = (path=None, device="cpu"))]
    fn load(py: Python<'_>, path: Option<PathBuf>, device: &str) -> PyResult<Model> {
        let device = self::device(device)?;
        py.detach(move || {
            let path = match path {
                Some(path) => path,
                None => default_model::locate()?,
            };
            let loaded = default_model::load(&path, device)?;
            Ok::<_, Failure>(Model::new(loaded.model, Some(loaded.path), loaded.training, loaded.bands))
        })
        .map_err(PyErr::from)
    }

    /// A freshly initialised model `name`, its configuration overridden by `config` (JSON).
    #[staticmethod]
    #[pyo3(signature = (name, config=None, device="cpu"))]
    fn create(py: Python<'_>, name: &str, config: Option<&str>, device: &str) -> PyResult<Model> {
        let device = self::device(device)?;
        py.detach(move || {
            let spec = ModelSpec::new(name, config_overrides(config)?)?;
            Ok::<_, Failure>(Model::new(LoadedModel::new(spec, device)?, None, None, None))
        })
        .map_err(PyErr::from)
    }

    /// A reference implementation's PyTorch checkpoint (read without running its pickled code),
    /// as `changedet import` converts it.
    #[staticmethod]
    #[pyo3(signature = (path, model, config=None, device="cpu"))]
    fn import_reference(py: Python<'_>, path: PathBuf, model: &str, config: Option<&str>, device: &str) -> PyResult<Model> {
        let device = self::device(device)?;
        py.detach(move || {
            let state_dict = read_state_dict(&path)?;
            let spec = ModelSpec::for_reference_state_dict(model, &state_dict, &path, config_overrides(config)?)?;
            let (loaded, _report) = import(spec, state_dict, &path, device)?;
            Ok::<_, Failure>(Model::new(loaded, None, None, None))
        })
        .map_err(PyErr::from)
    }

    /// Writes a changedet checkpoint (whole or not at all), keeping the training record.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        py.detach(move || {
            let state = self.lock();
            Checkpoint::write(&path, &state.loaded, &[], state.training.as_ref())?;
            Ok::<_, Failure>(())
        })
        .map_err(PyErr::from)
    }

    #[getter]
    fn name(&self) -> &'static str {
        self.lock().loaded.spec.name()
    }

    /// The full configuration, as JSON.
    #[getter]
    fn config_json(&self) -> String {
        self.lock().loaded.spec.config_json().to_string()
    }

    /// What the model says about itself: name, paper, summary, outputs, inputs.
    #[getter]
    fn card<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let state = self.lock();
        let spec = &state.loaded.spec;
        let card = spec.config().card();
        let dict = PyDict::new(py);
        dict.set_item("name", spec.name())?;
        dict.set_item("paper", card.paper)?;
        dict.set_item("summary", card.summary)?;
        dict.set_item("input_bands", spec.input_bands())?;
        dict.set_item("bands", state.bands.clone())?;
        dict.set_item("semantic_classes", spec.semantic_classes())?;
        dict.set_item("parameters", state.loaded.parameter_count())?;
        dict.set_item("path", state.path.clone())?;
        dict.set_item("training", state.training.as_ref().map(Value::to_string))?;
        Ok(dict)
    }

    #[getter]
    fn device(&self) -> String {
        changedet_models::device_name(self.lock().loaded.vs.device())
    }

    /// Predicts pairs of pixel tensors `[n, bands, h, w]` (uint8 or uint16, any device),
    /// normalised as the CLI normalises image files. Returns the change probability and mask
    /// `[n, h, w]`, the logits `[n, 2, h, w]` and, for semantic change models, each date's
    /// classes `[n, h, w]`.
    #[pyo3(signature = (before, after, classes=None))]
    fn predict<'py>(&self, py: Python<'py>, before: &Bound<'py, PyAny>, after: &Bound<'py, PyAny>, classes: Option<Vec<[Vec<String>; 2]>>) -> PyResult<Bound<'py, PyDict>> {
        let (before, after) = (bridge::from_python(before, "before")?, bridge::from_python(after, "after")?);
        let predictions = py.detach(move || {
            let mut state = self.lock();
            let batch = pixel_batch(&before, &after, classes.unwrap_or_default(), &state.loaded)?;
            if !state.frozen && !state.lent {
                state.loaded.prepare_for_inference();
                state.frozen = true;
            }
            let device = state.loaded.vs.device();
            let predictions = guarded(|| Ok(changedet_train::predict_batch(&state.loaded, &batch, device, Protocol::Whole, "the pair at index 0")?))?;
            Ok::<_, Failure>(stacked(predictions))
        })?;
        let dict = PyDict::new(py);
        for (key, tensor) in predictions {
            dict.set_item(key, bridge::to_python(py, &tensor)?)?;
        }
        Ok(dict)
    }

    /// Binary change scores on a dataset split (`changedet eval`), as JSON: the dataset as
    /// `NAME:PATH`, read with the bands the model was trained on.
    #[pyo3(signature = (dataset, split="test", batch_size=1, protocol="whole", ignore_value=None))]
    fn evaluate(&self, py: Python<'_>, dataset: &str, split: &str, batch_size: usize, protocol: &str, ignore_value: Option<u8>) -> PyResult<String> {
        let spec: DatasetSpec = dataset.parse().map_err(input)?;
        let protocol: Protocol = protocol.parse().map_err(input)?;
        if batch_size == 0 {
            return Err(input("batch_size must be at least 1"));
        }
        py.detach(move || {
            let mut state = self.lock();
            let dataset = Dataset::open(&spec, split, true, ignore_value)?;
            let dataset = match &state.bands {
                Some(bands) => dataset.with_bands(bands)?,
                None => dataset,
            };
            if !state.frozen && !state.lent {
                state.loaded.prepare_for_inference();
                state.frozen = true;
            }
            let device = state.loaded.vs.device();
            let options = changedet_train::SplitOptions { batch_size, device, protocol };
            let hidden = changedet_raster::progress::Progress::hidden(dataset.len() as u64);
            let confusion = guarded(|| Ok(changedet_train::evaluate(&state.loaded, &dataset, options, &hidden)?))?;
            Ok::<_, Failure>(serde_json::json!({ "pairs": dataset.len(), "split": split, "protocol": protocol.to_string(), "metrics": confusion.metrics() }).to_string())
        })
        .map_err(PyErr::from)
    }

    /// Change maps of a georeferenced scene pair as `changedet predict --scene` writes them
    /// (COGs, optionally polygons), `options` (JSON) being its scene options by their Python
    /// names. Returns the run's summary as JSON.
    fn predict_scene(&self, py: Python<'_>, before: Vec<PathBuf>, after: Vec<PathBuf>, out: PathBuf, options: &str) -> PyResult<String> {
        let job = scene_job(before, after, out, Options::parse("scene", options)?)?;
        py.detach(move || {
            let mut state = self.lock();
            if !state.frozen && !state.lent {
                state.loaded.prepare_for_inference();
                state.frozen = true;
            }
            let device = state.loaded.vs.device();
            let summary = guarded(|| Ok(changedet_scene::predict_scene(&state.loaded, device, &job)?))?;
            Ok::<_, Failure>(serde_json::to_string(&summary).expect("summaries serialise"))
        })
        .map_err(PyErr::from)
    }

    /// The model's inputs for pixel tensors `[n, bands, h, w]`: float `[n, bands, h, w]`
    /// normalised as `predict` normalises them (for `forward`).
    fn preprocess<'py>(&self, py: Python<'py>, before: &Bound<'py, PyAny>, after: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let (before, after) = (bridge::from_python(before, "before")?, bridge::from_python(after, "after")?);
        let (before, after) = py.detach(move || {
            let state = self.lock();
            let batch = pixel_batch(&before, &after, Vec::new(), &state.loaded)?;
            let shape = [batch.len() as i64, batch.bands as i64, batch.height as i64, batch.width as i64];
            let device = state.loaded.vs.device();
            Ok::<_, Failure>([&batch.before, &batch.after].map(|values| Tensor::from_slice(values).view(shape).to_device(device)))
        })?
        .into();
        Ok((bridge::to_python(py, &before)?, bridge::to_python(py, &after)?))
    }

    /// The network on normalised inputs `[n, bands, h, w]`, recorded by autograd: the change
    /// logits `[n, 2, h, w]` and, for semantic change models, each date's class scores.
    /// `train` switches dropout and batch statistics on.
    #[pyo3(signature = (before, after, train, classes=None))]
    fn forward<'py>(&self, py: Python<'py>, before: &Bound<'py, PyAny>, after: &Bound<'py, PyAny>, train: bool, classes: Option<Vec<[Vec<String>; 2]>>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let (before, after) = (bridge::from_python(before, "before")?, bridge::from_python(after, "after")?);
        let outputs = py.detach(move || {
            let mut state = self.lock();
            lend(&mut state)?;
            let n = check_inputs(&before, &after, &state.loaded)?;
            let classes = classes.unwrap_or_else(|| vec![Default::default(); n]);
            let out = guarded(|| Ok(state.loaded.model.forward_with_classes_t(&before, &after, &classes, train)))?;
            Ok::<_, Failure>(std::iter::once(out.logits).chain(out.semantic.into_iter().flatten()).collect::<Vec<_>>())
        })?;
        outputs.iter().map(|t| bridge::to_python(py, t)).collect()
    }

    /// The trainable parameters `(name, tensor)`, sorted by name: the model's own tensors, so
    /// that an optimiser stepping them changes the model.
    fn parameters<'py>(&self, py: Python<'py>) -> PyResult<Vec<(String, Bound<'py, PyAny>)>> {
        let mut state = self.lock();
        lend(&mut state).map_err(PyErr::from)?;
        let mut variables: Vec<(String, Tensor)> = state.loaded.vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        variables.sort_by(|a, b| a.0.cmp(&b.0));
        variables.into_iter().map(|(name, t)| Ok((name, bridge::to_python(py, &t)?))).collect()
    }
}

/// The scene job `options` describe (`predict`'s scene options), the CLI's defaults otherwise.
fn scene_job(before: Vec<PathBuf>, after: Vec<PathBuf>, out: PathBuf, mut options: Options) -> PyResult<SceneJob> {
    let defaults = SceneJob { batch_size: 1, ..SceneJob::new(before, after, out) };
    let vector = options.text("vector")?.map(|path| VectorOutput {
        path: PathBuf::from(path),
        options: PolygonOptions { min_area: 0.0, simplify: None },
    });
    let mut job = SceneJob {
        bands: options.take("bands").map(|v| serde_json::from_value(v).map_err(|_| input("bands must be 1-based band numbers, e.g. [4, 3, 2]"))).transpose()?,
        scaling: options.parsed("scale")?.unwrap_or(defaults.scaling),
        align: options.flag("align")?.unwrap_or(false),
        tile: options.count("tile")?.unwrap_or(defaults.tile),
        overlap: options.number("overlap")?.unwrap_or(defaults.overlap),
        block_strides: options.count("block")?.unwrap_or(defaults.block_strides),
        batch_size: options.count("batch_size")?.unwrap_or(defaults.batch_size),
        shard: options.parsed("shard")?.unwrap_or(defaults.shard),
        overwrite: options.flag("overwrite")?.unwrap_or(false),
        classes: [options.texts("classes_before")?.unwrap_or_default(), options.texts("classes_after")?.unwrap_or_default()],
        vector,
        ..defaults
    };
    let (min_area, simplify) = (options.real("min_area")?, options.real("simplify")?);
    match &mut job.vector {
        Some(vector) => vector.options = PolygonOptions { min_area: min_area.unwrap_or(0.0), simplify },
        None if min_area.is_some() || simplify.is_some() => return Err(input("min_area and simplify shape the polygons: give vector too")),
        None => {}
    }
    if [min_area, simplify].into_iter().flatten().any(|v| v < 0.0 || !v.is_finite()) {
        return Err(input("min_area and simplify must be finite and not negative"));
    }
    options.finish()?;
    Ok(job)
}

/// Readies the model for Python to change its weights. `prepare_for_inference` keeps what it
/// computed from them (folded batch norms), so a model readied for inference is rebuilt from its
/// variables first; from then on it is never frozen again.
fn lend(state: &mut State) -> Result<(), Failure> {
    state.lent = true;
    if state.frozen {
        let mut fresh = LoadedModel::new(state.loaded.spec.clone(), state.loaded.vs.device())?;
        fresh.vs.copy(&state.loaded.vs)?;
        state.loaded = fresh;
        state.frozen = false;
    }
    Ok(())
}

/// Runs libtorch work, turning its panics (a C++ exception tch did not return as an error) into
/// an error: a shape libtorch refuses must not take the interpreter down. Its large CPU tensors
/// reuse freed blocks (`cpu_blocks.rs`).
fn guarded<T>(work: impl FnOnce() -> Result<T, Failure>) -> Result<T, Failure> {
    let _reuse = crate::cpu_blocks::Reuse::start();
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|panic| {
        let message = panic.downcast_ref::<String>().cloned().or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
        Err(Failure { kind: crate::errors::Kind::Other, message: format!("libtorch refused the computation: {message}") })
    })
}

/// Normalised inputs the network can take: float `[n, bands, h, w]`, both dates alike. Returns n.
fn check_inputs(before: &Tensor, after: &Tensor, model: &LoadedModel) -> Result<usize, Failure> {
    let shape = before.size();
    let kinds = (before.f_kind(), after.f_kind());
    if !matches!(kinds, (Ok(Kind::Float), Ok(Kind::Float))) {
        return Err(Failure::input("the network takes float32 inputs, normalised as `preprocess` returns them"));
    }
    if shape.len() != 4 || after.size() != shape || shape[1] != model.spec.input_bands() as i64 {
        return Err(Failure::input(format!("the network takes before and after of one shape [n, {}, h, w]; got {:?} and {:?}", model.spec.input_bands(), shape, after.size())));
    }
    Ok(shape[0] as usize)
}

/// Pixel tensors `[n, bands, h, w]` as a batch the data crate normalises.
fn pixel_batch(before: &Tensor, after: &Tensor, classes: Vec<[Vec<String>; 2]>, model: &LoadedModel) -> Result<Batch, Failure> {
    let shape = before.size();
    if shape.len() != 4 || after.size() != shape {
        return Err(Failure::input(format!("before and after must be pixel tensors of one shape [n, bands, h, w]; got {:?} and {:?}", shape, after.size())));
    }
    let bands = model.spec.input_bands() as i64;
    if shape[1] != bands {
        return Err(Failure::input(format!("the images have {} bands, but {} takes {bands}", shape[1], model.spec.name())));
    }
    if !classes.is_empty() && classes.len() != shape[0] as usize {
        return Err(Failure::input(format!("{} class lists for {} pairs", classes.len(), shape[0])));
    }
    let pairs = (0..shape[0])
        .map(|i| Ok(PairSample { name: format!("pair {i}"), before: image(&before.get(i))?, after: image(&after.get(i))?, label: None, semantic: None }))
        .collect::<Result<Vec<_>, Failure>>()?;
    Ok(Batch::of_images(pairs, classes, &model.spec.normalization())?)
}

/// One date `[bands, h, w]` as the data crate holds it (band-interleaved).
fn image(pixels: &Tensor) -> Result<Image, Failure> {
    let [bands, h, w] = <[i64; 3]>::try_from(pixels.size()).expect("a date of a 4-d batch");
    if h == 0 || w == 0 {
        return Err(Failure::input("the images are empty"));
    }
    // tch has no uint16: the package hands 16-bit pixels over as int32.
    let kind = pixels.f_kind();
    if !matches!(kind, Ok(Kind::Uint8 | Kind::Int16 | Kind::Int)) {
        return Err(Failure::input("pixels must be uint8 (8-bit images) or uint16 (16-bit bands)"));
    }
    let interleaved = pixels.permute([1, 2, 0]).to_device(Device::Cpu).contiguous().flatten(0, -1);
    let (width, height, bands) = (w as u32, h as u32, bands as usize);
    if let Ok(Kind::Uint8) = kind {
        return Ok(Image::U8(Raster::new(width, height, bands, Vec::<u8>::try_from(&interleaved)?)));
    }
    let values = Vec::<i32>::try_from(&interleaved.to_kind(Kind::Int))?;
    let values = values.into_iter().map(u16::try_from).collect::<Result<Vec<u16>, _>>().map_err(|_| Failure::input("16-bit pixels must lie in 0..=65535"))?;
    Ok(Image::U16(Raster::new(width, height, bands, values)))
}

/// Each output of the pairs stacked over the batch.
fn stacked(pairs: Vec<PairPrediction>) -> Vec<(&'static str, Tensor)> {
    let plane = |p: &PairPrediction| [p.height as i64, p.width as i64];
    let probability = Tensor::stack(&pairs.iter().map(|p| Tensor::from_slice(&p.probability).view(plane(p))).collect::<Vec<_>>(), 0);
    let mask = Tensor::stack(&pairs.iter().map(|p| Tensor::from_slice(&p.change).view(plane(p))).collect::<Vec<_>>(), 0);
    let logits = Tensor::stack(&pairs.iter().map(|p| p.logits.shallow_clone()).collect::<Vec<_>>(), 0);
    let mut out = vec![("probability", probability), ("mask", mask), ("logits", logits)];
    if pairs.iter().all(|p| p.semantic.is_some()) && !pairs.is_empty() {
        for (date, key) in ["before_classes", "after_classes"].into_iter().enumerate() {
            let maps = pairs.iter().map(|p| Tensor::from_slice(&p.semantic.as_ref().expect("checked")[date].classes).view(plane(p))).collect::<Vec<_>>();
            out.push((key, Tensor::stack(&maps, 0)));
        }
    }
    out
}
