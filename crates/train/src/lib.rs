//! Training and running change-detection models: the optimiser, the training loop that carries
//! out a model's recipe (`changedet_models::recipe`) with checkpoints and resumption, and
//! whole-split inference and evaluation.

pub mod inference;
pub mod optim;
pub mod plot;
pub mod protocol;
pub mod report;
pub mod request;
pub mod threshold;
pub mod trainer;

pub use inference::{PairPrediction, SemanticPrediction, SplitOptions, evaluate, evaluate_every_convention, evaluate_with_curve, predict_batch, predict_dataset};
pub use protocol::Protocol;
pub use request::{TrainRequest, open_splits, warn_without_class_lists};
pub use trainer::{Sources, StepHook, TrainEvent, TrainJob, TrainSummary, TrainingState, train};

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] changedet_data::DataError),
    #[error(transparent)]
    Model(#[from] changedet_models::ModelError),
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    NonFinite(String),
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;
