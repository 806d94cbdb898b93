//! Rust errors as the package's exceptions (`changedet.errors`: `Error` and its subclasses),
//! with the messages the CLI prints.

use pyo3::prelude::*;
use pyo3::types::PyType;

use changedet_data::DataError;
use changedet_models::ModelError;
use changedet_train::TrainError;

/// Which `changedet.errors` class an error raises.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Arguments: shapes, dtypes, values (also a `ValueError`).
    Input,
    /// Checkpoint and weight files.
    Checkpoint,
    /// Model names and configurations (also a `ValueError`).
    Config,
    /// Datasets and image files.
    Data,
    /// Anything else.
    Other,
}

/// An error computed without the GIL, raised once it is held again.
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
}

impl Failure {
    pub fn input(message: impl Into<String>) -> Self {
        Failure { kind: Kind::Input, message: message.into() }
    }
}

impl Failure {
    fn from_model_kind(e: &ModelError) -> Kind {
        match e {
            ModelError::UnknownModel(_) | ModelError::Config { .. } => Kind::Config,
            ModelError::Recipe(_) | ModelError::Torch(_) | ModelError::Tokenizer(_) => Kind::Other,
            _ => Kind::Checkpoint,
        }
    }
}

impl From<ModelError> for Failure {
    fn from(e: ModelError) -> Self {
        Failure { kind: Failure::from_model_kind(&e), message: e.to_string() }
    }
}

impl From<DataError> for Failure {
    fn from(e: DataError) -> Self {
        Failure { kind: Kind::Data, message: e.to_string() }
    }
}

impl From<TrainError> for Failure {
    fn from(e: TrainError) -> Self {
        match e {
            TrainError::Data(e) => e.into(),
            TrainError::Model(e) => e.into(),
            TrainError::Config(message) => Failure { kind: Kind::Input, message },
            e => Failure { kind: Kind::Other, message: e.to_string() },
        }
    }
}

/// Errors of the crates that chain causes (the scene pipeline): the CLI's message, cause by cause;
/// a model or data error anywhere in the chain picks the class.
impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        let kind = e.chain().find_map(|cause| {
            if cause.is::<ModelError>() {
                cause.downcast_ref::<ModelError>().map(|m| Failure::from_model_kind(m))
            } else if cause.is::<DataError>() || cause.is::<std::io::Error>() {
                Some(Kind::Data)
            } else {
                None
            }
        });
        Failure { kind: kind.unwrap_or(Kind::Other), message: changedet_raster::text::error_line(e.as_ref()) }
    }
}

impl From<tch::TchError> for Failure {
    fn from(e: tch::TchError) -> Self {
        Failure { kind: Kind::Other, message: e.to_string() }
    }
}

impl From<Failure> for PyErr {
    fn from(f: Failure) -> PyErr {
        raise(f.kind, f.message)
    }
}

pub fn input(message: impl Into<String>) -> PyErr {
    raise(Kind::Input, message.into())
}

fn raise(kind: Kind, message: String) -> PyErr {
    let name = match kind {
        Kind::Input => "InputError",
        Kind::Checkpoint => "CheckpointError",
        Kind::Config => "ConfigError",
        Kind::Data => "DataError",
        Kind::Other => "Error",
    };
    Python::attach(|py| {
        let class = py.import("changedet.errors").and_then(|m| m.getattr(name)).and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
        match class {
            Ok(class) => PyErr::from_type(class, message),
            Err(e) => e,
        }
    })
}
