//! The maps a scene run writes, by model kind, and the manifest a shard leaves for `merge`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use changedet_data::palette::default_palette;
use changedet_raster::Window;
use changedet_raster::geo::MapKind;

/// The maps of a binary model (`classes: None`) or of a semantic one with K classes:
/// `change.tif` (0/1, nodata 255), `probability.tif` (float32, nodata NaN) and, for semantic
/// models, `before_classes.tif`, `after_classes.tif` and `fromto.tif` (0 unchanged, else
/// 1 + K·from + to), each with a colour table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapSet {
    pub classes: Option<usize>,
}

impl MapSet {
    pub fn new(classes: Option<usize>) -> Result<Self> {
        if let Some(k) = classes
            && k * k + 1 > 255
        {
            bail!("a from→to map holds at most 15 classes in uint8; this model has {k}");
        }
        Ok(MapSet { classes })
    }

    pub fn maps(&self) -> Vec<(&'static str, MapKind)> {
        let mut maps = vec![
            ("change", MapKind::Classes { colours: Some(vec![[0, 0, 0], [255, 255, 255]]) }),
            ("probability", MapKind::Probability),
        ];
        if let Some(k) = self.classes {
            let palette = default_palette(k);
            // From→to codes are coloured by the class they change to.
            let fromto = std::iter::once([0, 0, 0]).chain((0..k * k).map(|code| palette[code % k])).collect();
            maps.push(("before_classes", MapKind::Classes { colours: Some(palette.clone()) }));
            maps.push(("after_classes", MapKind::Classes { colours: Some(palette) }));
            maps.push(("fromto", MapKind::Classes { colours: Some(fromto) }));
        }
        maps
    }

    pub fn path(out: &Path, name: &str) -> PathBuf {
        out.join(format!("{name}.tif"))
    }

    /// Refuses to start when an output exists (unless `overwrite`) or the polygon file has an
    /// unknown format; creates the folder.
    pub fn prepare(&self, out: &Path, polygons: Option<&Path>, overwrite: bool) -> Result<()> {
        if let Some(path) = polygons {
            changedet_raster::geo::vector_driver(path)?;
        }
        std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create the output folder", out.display()))?;
        let maps = self.maps().into_iter().map(|(name, _)| Self::path(out, name));
        for path in maps.chain(polygons.map(Path::to_owned)).chain(std::iter::once(out.join(ShardManifest::FILE))) {
            if path.exists() && !overwrite {
                bail!("{} exists; pass --overwrite to replace it", path.display());
            }
        }
        Ok(())
    }
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
    /// The blocks this shard computed.
    pub windows: Vec<Window>,
    pub tiles: usize,
    pub valid_pixels: u64,
    pub changed_pixels: u64,
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
        let mut tmp = tempfile::Builder::new().permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644)).tempfile_in(dir)?;
        serde_json::to_writer_pretty(&mut tmp, self)?;
        tmp.persist(&path).with_context(|| format!("{}: cannot write", path.display()))?;
        Ok(())
    }
}
