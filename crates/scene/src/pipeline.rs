//! One scene run: reader thread → model (this thread) → writer thread, one block at a time.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use tch::{Device, Kind, Tensor};

use changedet_data::Normalization;
use changedet_models::input::to_device;
use changedet_models::{Decision, LoadedModel};
use changedet_raster::Window;
use changedet_raster::progress::Progress;
use changedet_raster::text::count;
use changedet_raster::geo::{self, Scene, StagedRaster};
use changedet_raster::tiling::{TilePlan, taper};

use crate::blend::{BlockBlend, BlockMaps, KeptTile, TileOutput};
use crate::maps::{MapSet, ShardManifest, map_path, prepare_outputs};
use crate::{SceneJob, SceneSummary, StageSeconds};

/// GDAL's block cache (MB): enough for the blocks under a few tiles of every band.
pub(crate) const GDAL_CACHE_MB: usize = 256;
/// Bands the models take (RGB).
const MODEL_BANDS: usize = 3;

/// Up to `batch_size` tiles of one block, normalised, `[n, 3, tile, tile]` per date.
struct TileBatch {
    block: usize,
    tiles: Vec<Window>,
    before: Vec<f32>,
    after: Vec<f32>,
    /// Per tile, `[tile, tile]`: both dates valid.
    valid: Vec<bool>,
    last_of_block: bool,
}

/// One date, opened, with its window onto the common grid and how its values become inputs.
struct DateInput {
    scene: Scene,
    offset: (usize, usize),
    inputs: InputMap,
}

/// Raw band values → model inputs: the band's scaling, then the model's normalisation with this
/// date's statistics (per-image normalisation takes the whole scene's, so that every tile is
/// normalised alike, as the whole image would be).
enum InputMap {
    /// Byte scenes: per band, the input of each of the 256 values, computed once (the same
    /// arithmetic as `Computed`, so the same bits).
    Table(Vec<[f32; 256]>),
    Computed(ScaledInputs),
}

/// Each value scaled, then normalised.
struct ScaledInputs {
    scales: Vec<Option<geo::BandScale>>,
    norm: Normalization,
}

impl InputMap {
    fn new(scene: &Scene, scaling: &geo::Scaling, norm: Normalization) -> Result<Self> {
        let computed = ScaledInputs::new(scene, scaling, norm)?;
        Ok(if scene.is_byte() { InputMap::Table(computed.table()) } else { InputMap::Computed(computed) })
    }
}

impl ScaledInputs {
    fn new(scene: &Scene, scaling: &geo::Scaling, norm: Normalization) -> Result<Self> {
        let scales = scaling.resolve(scene)?;
        let mut values = Vec::new();
        if norm.is_per_image() {
            for (band, scale) in scales.iter().enumerate() {
                values.extend(scene.sample(band, STATISTICS_SIDE)?.into_iter().map(|v| scale.map_or(v, |s| s.apply(v))));
            }
        }
        Ok(ScaledInputs { norm: norm.for_values(values.into_iter()), scales })
    }

    /// The inputs of all 256 byte values, per band.
    fn table(&self) -> Vec<[f32; 256]> {
        let mut values: Vec<f32> = (0..MODEL_BANDS).flat_map(|_| (0..=255u8).map(f32::from)).collect();
        self.apply(&mut values, None);
        values.chunks(256).map(|band| band.try_into().expect("256 values")).collect()
    }

    /// Planar raw values `[3, h, w]` → inputs in place; 0 (the mean) where not `valid`.
    fn apply(&self, values: &mut [f32], valid: Option<&[bool]>) {
        for (band, scale) in values.chunks_mut(values.len() / MODEL_BANDS).zip(&self.scales) {
            if let Some(scale) = scale {
                band.iter_mut().for_each(|v| *v = scale.apply(*v));
            }
        }
        self.norm.normalise_planar(values, MODEL_BANDS, valid);
    }
}

impl DateInput {
    /// Reads `tile` (common-grid coordinates) into `out` `[3, side, side]` (model inputs; zero,
    /// the mean, where invalid or beyond the scene) and ANDs its validity into `valid` `[side, side]`.
    fn read(&self, tile: &Window, side: usize, out: &mut [f32], valid: &mut [bool]) -> Result<()> {
        let window = Window::new(tile.x + self.offset.0, tile.y + self.offset.1, tile.width, tile.height);
        let (width, plane) = (tile.width, window.area());
        let mut ok = vec![true; plane];
        // Each band's rows, `(band, row)`: in the read buffer at `(band · height + row) · width`,
        // in `out` at `(band · side + row) · side`.
        let rows = (0..MODEL_BANDS).flat_map(|c| (0..tile.height).map(move |y| (c, y)));
        match &self.inputs {
            InputMap::Table(tables) => {
                let mut raw = vec![0u8; plane * MODEL_BANDS];
                self.scene.read(window, &mut raw, &mut ok)?;
                for (c, y) in rows {
                    let (raw, ok) = (&raw[(c * tile.height + y) * width..][..width], &ok[y * width..][..width]);
                    for ((input, &value), &ok) in out[(c * side + y) * side..][..width].iter_mut().zip(raw).zip(ok) {
                        *input = if ok { tables[c][usize::from(value)] } else { 0.0 };
                    }
                }
            }
            InputMap::Computed(computed) => {
                let mut raw = vec![0f32; plane * MODEL_BANDS];
                self.scene.read(window, &mut raw, &mut ok)?;
                computed.apply(&mut raw, Some(&ok));
                for (c, y) in rows {
                    out[(c * side + y) * side..][..width].copy_from_slice(&raw[(c * tile.height + y) * width..][..width]);
                }
            }
        }
        for y in 0..tile.height {
            for (valid, ok) in valid[y * side..][..width].iter_mut().zip(&ok[y * width..]) {
                *valid &= ok;
            }
        }
        Ok(())
    }
}

/// Runs `model` over the overlap of the job's two dates and writes the maps to `job.out`.
pub fn predict_scene(model: &LoadedModel, device: Device, job: &SceneJob) -> Result<SceneSummary> {
    let start = Instant::now();
    geo::configure(GDAL_CACHE_MB);
    let maps = MapSet::new(model.spec.semantic_classes()).map_err(anyhow::Error::msg)?;
    if job.shard.count > 1 && job.vector.is_some() {
        bail!("with --shard, polygons are made by `changedet merge --vector` from the merged maps");
    }
    let multiple = model.model.size_multiple();
    if !job.tile.is_multiple_of(multiple) {
        bail!("{} needs tiles whose side is a multiple of {multiple}; --tile is {}", model.spec.name(), job.tile);
    }
    prepare_outputs(&maps, &job.out, job.vector.as_ref().map(|v| v.path.as_path()), job.overwrite)?;
    // The warped files of --align stay until the end: the after date is read through them.
    let geo::RegisteredDates { before, after, overlap: common, warped: _warped } = open_dates(job)?;
    let plan = TilePlan::new(common.grid.width, common.grid.height, job.tile, job.overlap, job.block_strides).map_err(anyhow::Error::msg)?;
    let blocks = plan.blocks();
    let shard_blocks: Vec<(usize, Window)> = plan.shard(job.shard.index, job.shard.count).map(|i| (i, blocks[i])).collect();
    let mut staged = maps
        .maps()
        .iter()
        .map(|(name, kind)| StagedRaster::create(&map_path(&job.out, name), &common.grid, kind, job.shard.count == 1).map_err(anyhow::Error::from))
        .collect::<Result<Vec<_>>>()?;
    let mut summary = SceneSummary {
        threshold: model.threshold(),
        width: common.grid.width,
        height: common.grid.height,
        blocks: shard_blocks.len(),
        tiles: shard_blocks.iter().map(|(b, _)| plan.tiles_computed_in(*b, &shard_range(&shard_blocks)).len()).sum(),
        ..Default::default()
    };
    let run = Run { model, device, job, plan: &plan, blocks: &shard_blocks, classes: maps.classes };
    if job.progress {
        eprintln!("{}", run.plan_line(&summary, &before)?);
    }
    let dates = date_inputs(before, after, &common, job, model.spec.normalization())?;
    (summary.valid_pixels, summary.changed_pixels, summary.stages) = run.threads(dates, &mut staged, summary.tiles)?;
    let finishing = Instant::now();
    finish_outputs(staged, maps, job, &common.grid, &shard_blocks, model, &mut summary)?;
    summary.stages.finishing = finishing.elapsed().as_secs_f64();
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

/// Side of the overview the scene-wide statistics of per-image normalisation are taken on (the
/// full resolution for smaller scenes).
const STATISTICS_SIDE: usize = 2048;

/// Both dates opened on their common grid; with `--align`, the after date warped onto the
/// before grid when they differ (the warped files are kept in the result while reading).
fn open_dates(job: &SceneJob) -> Result<geo::RegisteredDates> {
    let dates = geo::open_registered(&job.before, &job.after, job.bands.as_deref(), job.align)?;
    check_bands(&dates.before)?;
    check_bands(&dates.after)?;
    Ok(dates)
}

/// Each date's inputs: its scaling and normalisation statistics, read from both dates at once.
fn date_inputs(before: Scene, after: Scene, common: &geo::Overlap, job: &SceneJob, norm: Normalization) -> Result<[DateInput; 2]> {
    let date = |scene: Scene, window: Window| -> Result<DateInput> {
        Ok(DateInput { inputs: InputMap::new(&scene, &job.scaling, norm)?, scene, offset: (window.x, window.y) })
    };
    let (before, after) = std::thread::scope(|s| {
        let before = s.spawn(|| date(before, common.before));
        let after = date(after, common.after);
        (before.join().expect("statistics thread"), after)
    });
    Ok([before?, after?])
}

/// What the three threads of a run share.
struct Run<'a> {
    model: &'a LoadedModel,
    device: Device,
    job: &'a SceneJob,
    plan: &'a TilePlan,
    /// This shard's blocks, with their indices in the scene's block list.
    blocks: &'a [(usize, Window)],
    classes: Option<usize>,
}

impl Run<'_> {
    /// What the run will do, said before it starts (a large scene takes a while to show its
    /// first progress): its size, tiles and blocks, where the statistics come from, and an
    /// estimate of the model's time from one batch of blank tiles.
    fn plan_line(&self, summary: &SceneSummary, scene: &Scene) -> Result<String> {
        let batch = self.job.batch_size.clamp(1, summary.tiles.max(1));
        let plane = self.plan.tile * self.plan.tile;
        let blank = TileBatch { block: 0, tiles: vec![Window::new(0, 0, self.plan.tile, self.plan.tile); batch], before: vec![0.0; batch * MODEL_BANDS * plane], after: vec![0.0; batch * MODEL_BANDS * plane], valid: vec![true; batch * plane], last_of_block: false };
        let part_channels: Vec<usize> = std::iter::once(2).chain(self.classes.into_iter().flat_map(|k| [k, k])).collect();
        let start = Instant::now();
        self.scores(&blank, &part_channels)?;
        let estimate = start.elapsed().as_secs_f64() * summary.tiles.div_ceil(batch) as f64;
        let statistics = match self.model.spec.normalization().is_per_image() || self.job.scaling.reads_statistics(scene) {
            true => format!("; scaling and statistics from {}", scene.statistics_source(0, STATISTICS_SIDE)?),
            false => String::new(),
        };
        Ok(format!(
            "plan: {}×{} px ({:.1} Mpx), {} of {} px in {}{statistics}; model time about {}",
            summary.width,
            summary.height,
            (summary.width * summary.height) as f64 / 1e6,
            count(summary.tiles as u64, "tile"),
            self.plan.tile,
            count(summary.blocks as u64, "block"),
            changedet_raster::progress::clock(std::time::Duration::from_secs_f64(estimate)),
        ))
    }

    /// Reader thread → model (this thread) → writer thread over this shard's blocks; returns
    /// the valid and changed pixel counts and the threads' busy times.
    fn threads(&self, dates: [DateInput; 2], staged: &mut [StagedRaster], tiles: usize) -> Result<(u64, u64, StageSeconds)> {
        let progress = Progress::counting(tiles as u64, "scene", "tiles", self.job.progress);
        let (tile_tx, tile_rx) = sync_channel::<TileBatch>(2);
        let (block_tx, block_rx) = sync_channel::<BlockMaps>(1);
        let counts = std::thread::scope(|s| -> Result<(u64, u64, StageSeconds)> {
            let reader = s.spawn(|| read_tiles(dates, self.plan, self.blocks, self.job.batch_size, tile_tx));
            let writer = s.spawn(|| write_blocks(staged, block_rx));
            let inferred = self.infer(tile_rx, block_tx, &progress);
            let read = reader.join().expect("reader thread");
            let written = writer.join().expect("writer thread");
            // The first failure in pipeline order is the cause; the others are its echoes.
            let reading = read?;
            let (valid, changed, writing) = written?;
            let (model, blending) = inferred?;
            Ok((valid, changed, StageSeconds { reading, model, blending, writing, finishing: 0.0 }))
        })?;
        progress.finish();
        Ok(counts)
    }
}

/// A shard's tiled GeoTIFFs and manifest, or the COGs (and polygons) of a whole run.
fn finish_outputs(staged: Vec<StagedRaster>, maps: MapSet, job: &SceneJob, grid: &geo::Grid, blocks: &[(usize, Window)], model: &LoadedModel, summary: &mut SceneSummary) -> Result<()> {
    if job.shard.count > 1 {
        for map in staged {
            map.finish_tiled()?;
        }
        let manifest = ShardManifest {
            format: ShardManifest::FORMAT.into(),
            index: job.shard.index,
            count: job.shard.count,
            width: grid.width,
            height: grid.height,
            transform: grid.transform,
            wkt: grid.wkt.clone(),
            maps,
            model: model.spec.name().into(),
            threshold: model.threshold(),
            windows: blocks.iter().map(|(_, w)| *w).collect(),
            tiles: summary.tiles,
            valid_pixels: summary.valid_pixels,
            changed_pixels: summary.changed_pixels,
        };
        return manifest.write(&job.out);
    }
    for (map, (_, kind)) in staged.into_iter().zip(maps.maps()) {
        map.finish_cog(&kind)?;
    }
    summary.changed_area_m2 = geo::changed_area_m2(&map_path(&job.out, MapSet::CHANGE))?;
    let record = geo::SceneRecord {
        format: geo::SceneRecord::FORMAT.into(),
        before: job.before.iter().map(|p| geo::absolute(p)).collect(),
        after: job.after.iter().map(|p| geo::absolute(p)).collect(),
        bands: job.bands.clone(),
        scaling: job.scaling,
        align: job.align,
        maps: maps.maps().iter().map(|(name, _)| format!("{name}.tif")).collect(),
        polygons: None,
        model: model.spec.name().into(),
        threshold: model.threshold(),
    };
    if let Some(vector) = &job.vector {
        // Maps without their polygons and record would make the rerun refuse to replace them.
        let polygons = crate::merge::polygons(&job.out, maps, vector).inspect_err(|_| {
            maps.maps().iter().for_each(|(name, _)| drop(std::fs::remove_file(map_path(&job.out, name))));
        });
        summary.polygons = Some(polygons.with_context(|| format!("{}: the polygons could not be written; the maps were removed, so the run can be started again", vector.path.display()))?);
    }
    let record = geo::SceneRecord { polygons: job.vector.as_ref().map(|v| geo::absolute(&v.path)), ..record };
    record.write(&job.out)?;
    Ok(())
}

fn check_bands(scene: &Scene) -> Result<()> {
    if scene.band_count() != MODEL_BANDS {
        bail!(
            "{} gives {} bands ({}), but the model takes {MODEL_BANDS} (RGB): choose them with --bands, e.g. --bands 3,2,1",
            scene.name(),
            scene.band_count(),
            scene.data_types().join(", ")
        );
    }
    Ok(())
}

/// The block indices of a shard's (contiguous) block list.
fn shard_range(blocks: &[(usize, Window)]) -> std::ops::Range<usize> {
    blocks.first().map_or(0, |b| b.0)..blocks.last().map_or(0, |b| b.0 + 1)
}

/// Reader thread: the tiles each block computes (`TilePlan::tiles_computed_in`), in batches.
/// Returns its busy seconds.
fn read_tiles(
    dates: [DateInput; 2],
    plan: &TilePlan,
    blocks: &[(usize, Window)],
    batch_size: usize,
    out: SyncSender<TileBatch>,
) -> Result<f64> {
    let mut busy = 0.0;
    let side = plan.tile;
    let plane = side * side;
    let run = shard_range(blocks);
    for &(block, _) in blocks {
        let tiles = plan.tiles_computed_in(block, &run);
        let mut chunks: Vec<&[Window]> = tiles.chunks(batch_size.max(1)).collect();
        if chunks.is_empty() {
            chunks.push(&[]); // all its tiles ran for earlier blocks: an empty batch finishes it
        }
        let batches = chunks.len();
        for (b, chunk) in chunks.into_iter().enumerate() {
            let start = Instant::now();
            let n = chunk.len();
            let mut batch = TileBatch {
                block,
                tiles: chunk.to_vec(),
                before: vec![0.0; n * MODEL_BANDS * plane],
                after: vec![0.0; n * MODEL_BANDS * plane],
                valid: vec![true; n * plane],
                last_of_block: b + 1 == batches,
            };
            for (i, tile) in chunk.iter().enumerate() {
                let valid = &mut batch.valid[i * plane..(i + 1) * plane];
                let images = [&mut batch.before, &mut batch.after];
                for (date, image) in dates.iter().zip(images) {
                    date.read(tile, side, &mut image[i * MODEL_BANDS * plane..(i + 1) * MODEL_BANDS * plane], valid)?;
                }
                // Masked pixels get the neutral input on both dates.
                for (p, _) in valid.iter().enumerate().filter(|(_, ok)| !**ok) {
                    for c in 0..MODEL_BANDS {
                        batch.before[(i * MODEL_BANDS + c) * plane + p] = 0.0;
                        batch.after[(i * MODEL_BANDS + c) * plane + p] = 0.0;
                    }
                }
            }
            busy += start.elapsed().as_secs_f64();
            if out.send(batch).is_err() {
                return Ok(busy); // the model side stopped; its error is reported
            }
        }
    }
    Ok(busy)
}

impl Run<'_> {
    /// This thread: tiles → scores → per-block blends → maps. Returns the seconds spent in the
    /// model and in blending.
    fn infer(&self, tiles: Receiver<TileBatch>, out: SyncSender<BlockMaps>, progress: &Progress) -> Result<(f64, f64)> {
        let (mut model, mut blending) = (0.0, 0.0);
        let side = self.plan.tile;
        let plane = side * side;
        let weights = taper(side, self.plan.overlap);
        // Change logits, then each date's class scores.
        let part_channels = match self.classes {
            Some(k) => vec![2, k, k],
            None => vec![2],
        };
        let run = shard_range(self.blocks);
        let blocks = self.plan.blocks();
        let mut kept: BTreeMap<(usize, usize), KeptTile> = BTreeMap::new();
        let mut current: Option<BlockBlend> = None;
        for batch in tiles {
            let window = blocks[batch.block];
            let blend = current.get_or_insert_with(|| BlockBlend::new(window, &part_channels, &kept));
            let start = Instant::now();
            let scores = self.scores(&batch, &part_channels)?;
            let scored = Instant::now();
            model += (scored - start).as_secs_f64();
            for (i, tile) in batch.tiles.iter().enumerate() {
                let output = TileOutput {
                    tile: *tile,
                    region: Window::new(tile.x, tile.y, side, side),
                    parts: scores.iter().zip(&part_channels).map(|(part, c)| &part[i * c * plane..(i + 1) * c * plane]).collect(),
                    valid: &batch.valid[i * plane..(i + 1) * plane],
                };
                blend.add_kept_before(tile, &kept, &weights);
                blend.add(&output, &weights);
                if let Some(keep) = KeptTile::for_later_blocks(&output, self.plan, &blocks, batch.block, &run) {
                    kept.insert((tile.y, tile.x), keep);
                }
            }
            progress.inc(batch.tiles.len() as u64);
            let finished = if batch.last_of_block {
                let maps = current.take().expect("a block in progress").finish(&kept, &weights, self.classes, Decision::log_odds(self.model.threshold()) as f32)?;
                kept.retain(|_, k| k.until_block > batch.block);
                Some(maps)
            } else {
                None
            };
            blending += scored.elapsed().as_secs_f64();
            if finished.is_some_and(|maps| out.send(maps).is_err()) {
                break; // the writer failed; its error is reported
            }
        }
        Ok((model, blending))
    }

    /// The model's scores of a batch of tiles, per part (change logits, then each date's class
    /// scores, of `part_channels`) `[n, side, side, channels]` flattened.
    fn scores(&self, batch: &TileBatch, part_channels: &[usize]) -> Result<Vec<Vec<f32>>> {
        let side = self.plan.tile as i64;
        let n = batch.tiles.len() as i64;
        if n == 0 {
            return Ok(Vec::new());
        }
        let shape = [n, MODEL_BANDS as i64, side, side];
        let before = to_device(Tensor::from_slice(&batch.before).view(shape), self.device);
        let after = to_device(Tensor::from_slice(&batch.after).view(shape), self.device);
        let prompts = vec![self.job.classes.clone(); n as usize];
        let output = tch::no_grad(|| self.model.model.forward_with_classes_t(&before, &after, &prompts, false));
        let mut parts = vec![output.logits];
        if let Some([a, b]) = output.semantic {
            parts.extend([a, b]);
        }
        let channels: Vec<usize> = parts.iter().map(|p| p.size()[1] as usize).collect();
        if channels != part_channels {
            bail!("{} returned outputs of {channels:?} channels, where the scene expects {part_channels:?}", self.model.spec.name());
        }
        parts.iter().map(pixel_interleaved).collect()
    }
}

/// `t` `[n, c, h, w]` (any device, kind and memory layout) as a CPU f32 buffer `[n, h, w, c]`:
/// one plain copy of the channels-last maps that models return on a CPU.
fn pixel_interleaved(t: &Tensor) -> Result<Vec<f32>> {
    let nhwc = t.permute([0, 2, 3, 1]).contiguous().to_kind(Kind::Float).to_device(Device::Cpu);
    Ok(Vec::<f32>::try_from(nhwc.view([-1]))?)
}

/// Writer thread: blocks into the staged maps (in `MapSet::maps` order). Returns the valid and
/// changed pixel counts and its busy seconds.
fn write_blocks(staged: &mut [StagedRaster], blocks: Receiver<BlockMaps>) -> Result<(u64, u64, f64)> {
    let (mut valid, mut changed, mut busy) = (0u64, 0u64, 0.0);
    for block in blocks {
        let start = Instant::now();
        valid += block.change.iter().filter(|&&c| c != 255).count() as u64;
        changed += block.change.iter().filter(|&&c| c == 1).count() as u64;
        staged[0].write(&block.window, block.change)?;
        staged[1].write(&block.window, block.probability)?;
        if let Some(semantic) = block.semantic {
            for (map, values) in staged[2..].iter_mut().zip(semantic) {
                map.write(&block.window, values)?;
            }
        }
        busy += start.elapsed().as_secs_f64();
    }
    Ok((valid, changed, busy))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte scene read through its tables gives the bits of the computed path, validity
    /// included (RGB.byte.tif has a nodata border of 0), on a tile past the scene's edge too.
    #[test]
    fn byte_tables_give_the_computed_inputs() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/geotiff-single/RGB.byte.tif");
        let open = || Scene::open(std::slice::from_ref(&path), None).unwrap();
        let stretch = geo::Scaling::Range { min: 20.0, max: 180.0 };
        for (scaling, norm) in [(geo::Scaling::Auto, Normalization::IMAGENET), (geo::Scaling::Auto, Normalization::PER_IMAGE), (stretch, Normalization::PER_IMAGE)] {
            let date = |inputs| DateInput { inputs, scene: open(), offset: (0, 0) };
            let table = date(InputMap::new(&open(), &scaling, norm).unwrap());
            let computed = date(InputMap::Computed(ScaledInputs::new(&open(), &scaling, norm).unwrap()));
            assert!(matches!(table.inputs, InputMap::Table(_)));
            let side = 256;
            for tile in [Window::new(0, 0, side, side), Window::new(600, 500, 191, 218)] {
                let read = |date: &DateInput| {
                    let (mut out, mut valid) = (vec![f32::NAN; 3 * side * side], vec![true; side * side]);
                    date.read(&tile, side, &mut out, &mut valid).unwrap();
                    (out.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), valid)
                };
                let (expected, valid) = read(&computed);
                assert_eq!(read(&table), (expected, valid.clone()), "{scaling:?} {norm:?} {tile:?}");
                let inside: Vec<bool> = (0..side * side).filter(|p| p % side < tile.width && p / side < tile.height).map(|p| valid[p]).collect();
                assert!(inside.contains(&true) && inside.contains(&false), "the tile has valid and nodata pixels");
            }
        }
    }
}
