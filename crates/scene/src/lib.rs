//! Whole georeferenced scenes: two dates of any size → overlapping model tiles → blended logits →
//! Cloud-Optimised GeoTIFF maps and change polygons, in memory that does not grow with the scene.
//!
//! `predict_scene` runs three threads: a reader (GDAL windows → scaled, normalised tiles), the
//! model (tiles → logits, blended per block), and a writer (blocks → staged GeoTIFFs). With
//! `--shard i/N` a run covers a contiguous part of the block list and leaves tiled GeoTIFFs plus a
//! `shard.json`; `merge` copies each shard's blocks into the same COGs an unsharded run writes.

mod blend;
mod maps;
mod merge;
mod pipeline;

pub use maps::{MapSet, ShardManifest};
pub use merge::merge;
pub use pipeline::predict_scene;

use std::path::PathBuf;

use changedet_raster::geo::{PolygonOptions, Scaling};
use changedet_raster::text::count;

/// Everything a scene run needs besides the model.
#[derive(Clone, Debug)]
pub struct SceneJob {
    /// The before date: one raster, or one file per band (stacked in order).
    pub before: Vec<PathBuf>,
    pub after: Vec<PathBuf>,
    /// 1-based band numbers over the stacked bands of each date, in model order (RGB).
    pub bands: Option<Vec<usize>>,
    pub scaling: Scaling,
    /// Warp the after date onto the before grid instead of refusing a different grid.
    pub align: bool,
    /// Tile side in pixels (a multiple of the model's size multiple).
    pub tile: usize,
    /// Pixels shared by neighbouring tiles, blended with sin² weights.
    pub overlap: usize,
    /// Block side in strides: the unit of memory (one block's blend at a time) and of sharding.
    pub block_strides: usize,
    /// Tiles per forward pass.
    pub batch_size: usize,
    pub shard: Shard,
    /// Output folder.
    pub out: PathBuf,
    pub overwrite: bool,
    pub vector: Option<VectorOutput>,
    /// Class names of each date, for vision-language models' prompts.
    pub classes: [Vec<String>; 2],
    pub progress: bool,
}

impl SceneJob {
    pub fn new(before: Vec<PathBuf>, after: Vec<PathBuf>, out: PathBuf) -> Self {
        SceneJob {
            before,
            after,
            bands: None,
            scaling: Scaling::Auto,
            align: false,
            tile: 512,
            overlap: 64,
            block_strides: 8,
            batch_size: 4,
            shard: Shard::WHOLE,
            out,
            overwrite: false,
            vector: None,
            classes: Default::default(),
            progress: false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct VectorOutput {
    pub path: PathBuf,
    pub options: PolygonOptions,
}

/// Part `index` (0-based) of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };
}

impl std::str::FromStr for Shard {
    type Err = String;
    /// `I/N`, 1-based like Slurm array indices (Kubernetes' 0-based completion index is written
    /// `$((JOB_COMPLETION_INDEX + 1))/N`).
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("bad shard '{s}': expected I/N with 1 ≤ I ≤ N");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (i, n): (usize, usize) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        if i == 0 || i > n {
            return Err(bad());
        }
        Ok(Shard { index: i - 1, count: n })
    }
}

/// What a run did, for the closing summary.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SceneSummary {
    pub width: usize,
    pub height: usize,
    pub blocks: usize,
    pub tiles: usize,
    pub valid_pixels: u64,
    pub changed_pixels: u64,
    /// The change probability above which a pixel is changed.
    pub threshold: f64,
    /// Area of the changed pixels in m² (`None` for scenes without a CRS).
    pub changed_area_m2: Option<f64>,
    pub polygons: Option<usize>,
    pub seconds: f64,
    pub stages: StageSeconds,
}

/// Where a run's time went: each thread's busy time (the three overlap) and the closing step.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct StageSeconds {
    /// Reader thread: GDAL windows, scaling, normalisation.
    pub reading: f64,
    /// Model thread: forward passes, scores copied back.
    pub model: f64,
    /// Model thread: blending and the blocks' maps.
    pub blending: f64,
    /// Writer thread: staged GeoTIFFs.
    pub writing: f64,
    /// After the last block: COGs, polygons, or a shard's files.
    pub finishing: f64,
}

impl std::fmt::Display for StageSeconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let StageSeconds { reading, model, blending, writing, finishing } = self;
        write!(f, "reading {reading:.1} s, model {model:.1} s, blending {blending:.1} s, writing {writing:.1} s (threads, overlapping); then outputs {finishing:.1} s")
    }
}

impl SceneSummary {
    pub fn megapixels_per_second(&self) -> f64 {
        (self.width * self.height) as f64 / 1e6 / self.seconds.max(1e-9)
    }
}

impl std::fmt::Display for SceneSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let share = 100.0 * self.changed_pixels as f64 / self.valid_pixels.max(1) as f64;
        write!(
            f,
            "{}×{} px, {} in {}; changed (probability > {}): {} px ({share:.2} % of {} valid)",
            self.width,
            self.height,
            count(self.tiles as u64, "tile"),
            count(self.blocks as u64, "block"),
            self.threshold,
            self.changed_pixels,
            self.valid_pixels
        )?;
        if let Some(m2) = self.changed_area_m2 {
            write!(f, ", {m2:.0} m² ({:.2} ha)", m2 / 10_000.0)?;
        }
        if let Some(n) = self.polygons {
            write!(f, ", {}", count(n as u64, "polygon"))?;
        }
        write!(f, "; {:.1} s ({:.2} Mpx/s)", self.seconds, self.megapixels_per_second())
    }
}
