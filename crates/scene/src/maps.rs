//! Where a scene run writes its maps ([`MapSet`]), and the manifest a shard leaves for `merge`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

pub use changedet_data::maps::MapSet;
use changedet_raster::Window;

/// Where a scene map goes: `OUT/NAME.tif`.
pub fn map_path(out: &Path, name: &str) -> PathBuf {
    out.join(format!("{name}.tif"))
}

/// Refuses to start when an output exists (unless `overwrite`) or the polygon file has an
/// unknown format or a folder it cannot be written to; creates the output folder.
pub fn prepare_outputs(maps: &MapSet, out: &Path, polygons: Option<&Path>, overwrite: bool) -> Result<()> {
    if let Some(path) = polygons {
        changedet_raster::geo::vector_driver(path)?;
    }
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create the output folder", out.display()))?;
    if let Some(path) = polygons {
        // Found now rather than after the whole scene is computed.
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        tempfile::tempfile_in(folder).with_context(|| format!("{}: cannot write the polygons: the folder {} is missing or not writable", path.display(), folder.display()))?;
    }
    let paths = maps.maps().into_iter().map(|(name, _)| map_path(out, name));
    let records = [ShardManifest::FILE, changedet_raster::geo::SceneRecord::FILE].map(|file| out.join(file));
    let paths = paths.chain(polygons.map(Path::to_owned)).chain(records);
    changedet_raster::atomic::check_replaceable(paths, overwrite).map_err(anyhow::Error::msg)
}

/// Left beside a shard's maps; `merge` checks that the shards fit together.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardManifest {
    pub format: String,
    pub index: usize,
    pub count: usize,
    pub width: usize,
    pub height: usize,
    pub transform: [f64; 6],
    pub wkt: String,
    pub maps: MapSet,
    pub model: String,
    /// The change probability above which a pixel was called changed.
    #[serde(default = "argmax")]
    pub threshold: f64,
    /// The blocks this shard computed.
    pub windows: Vec<Window>,
    pub tiles: usize,
    pub valid_pixels: u64,
    pub changed_pixels: u64,
}

fn argmax() -> f64 {
    0.5
}

impl ShardManifest {
    pub const FILE: &str = "shard.json";
    pub const FORMAT: &str = "changedet-shard/1";

    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(Self::FILE);
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}: not a shard folder (no {})", dir.display(), Self::FILE))?;
        let manifest: ShardManifest = serde_json::from_str(&text).with_context(|| format!("{}: unreadable shard manifest", path.display()))?;
        if manifest.format != Self::FORMAT {
            bail!("{}: format {}, expected {}", path.display(), manifest.format, Self::FORMAT);
        }
        Ok(manifest)
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        let path = dir.join(Self::FILE);
        let json = serde_json::to_vec_pretty(self)?;
        changedet_raster::atomic::write_bytes(&path, &json).with_context(|| format!("{}: cannot write", path.display()))
    }
}
