//! `scene.json`: what a whole-scene run read and wrote, left beside its maps so that a viewer
//! (or a person) can find the two dates again without being told.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{GeoError, Result};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SceneRecord {
    pub format: String,
    /// Each date's files (absolute where they could be resolved), one raster or one per band.
    pub before: Vec<PathBuf>,
    pub after: Vec<PathBuf>,
    /// 1-based bands over each date's stacked bands, in the model's (RGB) order.
    pub bands: Option<Vec<usize>>,
    /// How the bands became 0–255 model input (what a viewer shows too); records written before
    /// it was kept ran the default.
    #[serde(default = "auto")]
    pub scaling: super::Scaling,
    /// Whether the after date was warped onto the before grid.
    pub align: bool,
    /// The maps written, as file names in the folder (`change.tif`, ...).
    pub maps: Vec<String>,
    /// The change polygons, when written.
    pub polygons: Option<PathBuf>,
    pub model: String,
    /// The change probability above which a pixel was called changed (records written before
    /// it was kept used the argmax, ½).
    #[serde(default = "argmax")]
    pub threshold: f64,
}

impl SceneRecord {
    pub const FILE: &str = "scene.json";
    pub const FORMAT: &str = "changedet-scene/1";

    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(Self::FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| GeoError::Invalid(format!("{}: no scene record ({e}); it is written by `changedet predict` on whole scenes", path.display())))?;
        let record: SceneRecord = serde_json::from_str(&text).map_err(|e| GeoError::Invalid(format!("{}: unreadable scene record: {e}", path.display())))?;
        if record.format != Self::FORMAT {
            return Err(GeoError::Invalid(format!("{}: format {}, expected {}", path.display(), record.format, Self::FORMAT)));
        }
        Ok(record)
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(Self::FILE);
        let json = serde_json::to_vec_pretty(self).map_err(|e| GeoError::Invalid(e.to_string()))?;
        crate::atomic::write_bytes(&path, &json).map_err(|e| GeoError::Invalid(format!("{}: cannot write: {e}", path.display())))
    }
}

fn argmax() -> f64 {
    0.5
}

fn auto() -> super::Scaling {
    super::Scaling::Auto
}

/// `path` made absolute, so that a record stays valid wherever it is read from.
pub fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}
