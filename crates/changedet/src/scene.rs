//! `predict` on whole georeferenced scenes, and `merge` of sharded runs.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, Parser};
use tch::Device;

use changedet_models::LoadedModel;
use changedet_raster::geo::{PolygonOptions, Scaling};
use changedet_scene::{SceneJob, Shard, VectorOutput};

/// Scene options of `predict`.
#[derive(Args, Clone, Debug, PartialEq)]
#[command(next_help_heading = "Scenes")]
pub struct SceneArgs {
    /// Read --before/--after as georeferenced scenes whatever their format (.tif, .tiff, .vrt,
    /// .img and .jp2 files, or several files per date, are scenes anyway).
    #[arg(long)]
    scene: bool,
    /// Bands fed to the model as R,G,B: 1-based over the stacked bands of each date [default: all,
    /// which must be 3].
    #[arg(long, value_delimiter = ',')]
    bands: Option<Vec<usize>>,
    /// How band values map to the 0–255 range the model was trained on: auto (8-bit as is,
    /// otherwise a 2–98 % percentile stretch per band), divide:D, percentile:LOW:HIGH, range:MIN:MAX.
    #[arg(long, default_value = "auto")]
    scale: Scaling,
    /// Warp the after scene onto the before grid (bilinear) when CRS, pixel size or pixel
    /// lattice differ, instead of refusing.
    #[arg(long)]
    align: bool,
    /// Tile side in pixels.
    #[arg(long, default_value_t = 512, value_parser = crate::values::at_least_one)]
    tile: usize,
    /// Pixels shared by neighbouring tiles; their logits are blended with smooth weights.
    #[arg(long, default_value_t = 64)]
    overlap: usize,
    /// Block side in tile strides: the scene is blended one block at a time (memory grows with
    /// its square) and sharded by blocks. Each tile runs once whatever the block size.
    #[arg(long, default_value_t = 8, value_parser = crate::values::at_least_one)]
    block: usize,
    /// Process only part I of N of the scene's blocks (1-based), for scheduler arrays; writes
    /// tiled GeoTIFFs and shard.json to --out, to be assembled by `changedet merge`.
    #[arg(long)]
    shard: Option<Shard>,
    #[command(flatten)]
    vector: VectorArgs,
}

#[derive(Args, Clone, Debug, PartialEq)]
pub struct VectorArgs {
    /// Also polygonise the changes into this .gpkg or .geojson (the maps' CRS; attributes
    /// area, mean_probability, and class_from/class_to for semantic models).
    #[arg(long)]
    vector: Option<PathBuf>,
    /// Drop polygons smaller than this many m² (measured on the ellipsoid whatever the CRS).
    #[arg(long, default_value_t = 0.0, requires = "vector", value_parser = crate::values::non_negative)]
    min_area: f64,
    /// Simplify polygon outlines with this tolerance in the maps' CRS units (metres in projected
    /// CRSs, degrees in geographic ones; topology preserved).
    #[arg(long, requires = "vector", value_parser = crate::values::non_negative)]
    simplify: Option<f64>,
}

impl VectorArgs {
    fn output(&self) -> Option<VectorOutput> {
        self.vector.clone().map(|path| VectorOutput { path, options: PolygonOptions { min_area: self.min_area, simplify: self.simplify } })
    }
}

impl SceneArgs {
    /// Whether these inputs are scenes.
    pub fn applies(&self, before: &[PathBuf]) -> bool {
        let scene_extension = |p: &PathBuf| {
            p.extension().and_then(|e| e.to_str()).is_some_and(|e| ["tif", "tiff", "vrt", "img", "jp2"].contains(&e.to_ascii_lowercase().as_str()))
        };
        self.scene || before.len() > 1 || before.iter().any(scene_extension)
    }

    /// Whether no scene option was given.
    pub fn is_default(&self) -> bool {
        #[derive(Parser)]
        struct Defaults {
            #[command(flatten)]
            scene: SceneArgs,
        }
        *self == Defaults::parse_from(["changedet"]).scene
    }
}

/// `predict` on a scene pair.
#[allow(clippy::too_many_arguments)]
pub fn predict(args: &SceneArgs, model: &LoadedModel, device: Device, before: &[PathBuf], after: &[PathBuf], out: &Path, batch_size: usize, classes: [Vec<String>; 2], overwrite: bool) -> Result<()> {
    if model.spec.config().uses_class_lists() && classes[0].is_empty() {
        tracing::warn!("no --classes-before for this scene: {}'s prompts fall back to the bare prefix", model.spec.name());
    }
    let job = SceneJob {
        bands: args.bands.clone(),
        scaling: args.scale,
        align: args.align,
        tile: args.tile,
        overlap: args.overlap,
        block_strides: args.block,
        batch_size,
        shard: args.shard.unwrap_or(Shard::WHOLE),
        overwrite,
        vector: args.vector.output(),
        classes,
        progress: true,
        ..SceneJob::new(before.to_vec(), after.to_vec(), out.to_owned())
    };
    let summary = changedet_scene::predict_scene(model, device, &job)?;
    let part = match args.shard {
        Some(s) if s.count > 1 => format!(" (shard {}/{}: merge with `changedet merge`)", s.index + 1, s.count),
        _ => String::new(),
    };
    println!("{summary}");
    println!("maps in {}{part}", out.display());
    if let Some(v) = &args.vector.vector {
        println!("polygons in {}", v.display());
    }
    Ok(())
}

/// Assemble the shards of a `predict --shard I/N` run into Cloud-Optimised GeoTIFFs.
///
/// Give all N shard output folders; the result equals an unsharded run's maps pixel for pixel.
#[derive(Parser)]
pub struct MergeArgs {
    /// The shard folders (each with shard.json).
    #[arg(required = true)]
    shards: Vec<PathBuf>,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    vector: VectorArgs,
    /// Replace existing outputs.
    #[arg(long)]
    overwrite: bool,
}

pub fn merge(args: MergeArgs) -> Result<()> {
    let summary = changedet_scene::merge(&args.shards, &args.out, args.overwrite, args.vector.output().as_ref())?;
    println!("{summary}");
    println!("maps in {}", args.out.display());
    Ok(())
}
