//! Assembling shards into the maps of an unsharded run, and polygons from finished maps.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use gdal::Dataset;

use changedet_raster::geo::{self, Grid, MapKind, PolygonOptions, StagedRaster};

use crate::maps::{MapSet, ShardManifest, map_path, prepare_outputs};
use crate::{SceneSummary, VectorOutput};

/// Merges shard folders (all `count` of one run, any order) into COGs in `out`. Each shard's
/// maps cover the whole grid but hold only the blocks listed in its manifest (the others are
/// sparse); those blocks are copied into one staged map, which becomes the COG.
pub fn merge(shards: &[PathBuf], out: &Path, overwrite: bool, vector: Option<&VectorOutput>) -> Result<SceneSummary> {
    let start = Instant::now();
    geo::configure(crate::pipeline::GDAL_CACHE_MB);
    let manifests = shards.iter().map(|dir| ShardManifest::read(dir)).collect::<Result<Vec<_>>>()?;
    let first = manifests.first().context("merge needs shard folders")?;
    let mut seen = vec![false; first.count];
    for (dir, m) in shards.iter().zip(&manifests) {
        let run = |m: &ShardManifest| (m.count, m.width, m.height, m.transform, m.wkt.clone(), m.maps, m.model.clone(), m.threshold.to_bits());
        if run(m) != run(first) {
            bail!("{} is not from the same run as {} (grid, model, threshold or shard count differ)", dir.display(), shards[0].display());
        }
        if std::mem::replace(&mut seen[m.index], true) {
            bail!("{}: shard {}/{} given twice", dir.display(), m.index + 1, m.count);
        }
    }
    if let Some(missing) = seen.iter().position(|s| !s) {
        bail!("shard {}/{} is missing", missing + 1, first.count);
    }
    let maps = first.maps;
    prepare_outputs(&maps, out, vector.map(|v| v.path.as_path()), overwrite)?;
    let grid = Grid { width: first.width, height: first.height, transform: first.transform, wkt: first.wkt.clone() };
    for (name, kind) in maps.maps() {
        let mut merged = StagedRaster::create(&map_path(out, name), &grid, &kind, true)?;
        // Shard by shard in their order, so that the blocks come in the order the overviews need.
        let mut parts: Vec<_> = shards.iter().zip(&manifests).collect();
        parts.sort_by_key(|(_, m)| m.index);
        for (dir, manifest) in parts {
            let path = map_path(dir, name);
            let part = Dataset::open(&path).with_context(|| format!("{}: cannot open", path.display()))?;
            let band = part.rasterband(1)?;
            for w in &manifest.windows {
                let size = (w.width, w.height);
                let at = (w.x as isize, w.y as isize);
                let read = |e| anyhow::anyhow!("{}: cannot read block {w:?}: {e}", path.display());
                match kind {
                    MapKind::Probability => merged.write(w, band.read_as::<f32>(at, size, size, None).map_err(read)?.into_shape_and_vec().1)?,
                    MapKind::Classes { .. } => merged.write(w, band.read_as::<u8>(at, size, size, None).map_err(read)?.into_shape_and_vec().1)?,
                }
            }
        }
        merged.finish_cog(&kind)?;
    }
    let changed_pixels = manifests.iter().map(|m| m.changed_pixels).sum::<u64>();
    let mut summary = SceneSummary {
        width: first.width,
        height: first.height,
        blocks: manifests.iter().map(|m| m.windows.len()).sum(),
        tiles: manifests.iter().map(|m| m.tiles).sum(),
        valid_pixels: manifests.iter().map(|m| m.valid_pixels).sum(),
        changed_pixels,
        threshold: first.threshold,
        changed_area_m2: changedet_raster::geo::changed_area_m2(&map_path(out, MapSet::CHANGE))?,
        polygons: None,
        seconds: 0.0,
        stages: Default::default(),
    };
    if let Some(vector) = vector {
        summary.polygons = Some(polygons(out, maps, vector)?);
    }
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

/// Polygons of the finished maps in `dir`.
pub(crate) fn polygons(dir: &Path, maps: MapSet, vector: &VectorOutput) -> Result<usize> {
    let fromto = maps.classes.map(|k| (map_path(dir, "fromto"), k));
    let options: &PolygonOptions = &vector.options;
    Ok(geo::polygonize(
        &map_path(dir, "change"),
        fromto.as_ref().map(|(p, k)| (p.as_path(), *k)),
        &map_path(dir, "probability"),
        &vector.path,
        options,
    )?)
}
