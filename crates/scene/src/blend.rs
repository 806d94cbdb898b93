//! Assembling one block's maps from the tiles that touch it: the block's own tiles as they
//! come from the model and the kept strips of tiles computed for earlier blocks, added in
//! row-major order (so that a pixel's value never depends on which block computed a tile), then
//! turned into change, probability and class maps.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow};
use rayon::prelude::*;

use changedet_raster::tiling::{BlendAccumulator, BlendedSums, TilePlan};
use changedet_raster::{Window, from_to};

/// A finished block: the maps' values over `window`.
pub(crate) struct BlockMaps {
    pub(crate) window: Window,
    /// 0/1, 255 = nodata.
    pub(crate) change: Vec<u8>,
    /// NaN = nodata.
    pub(crate) probability: Vec<f32>,
    /// Before classes, after classes, from→to (semantic models).
    pub(crate) semantic: Option<[Vec<u8>; 3]>,
}

/// A tile's model output over `region` (scene coordinates, within the tile's padded square):
/// per part (change logits, then each date's class scores) `[region.height, region.width,
/// channels]`, pixel-interleaved as the model's channels-last outputs are; validity
/// `[region.height, region.width]`.
pub(crate) struct TileOutput<'a> {
    pub(crate) tile: Window,
    pub(crate) region: Window,
    pub(crate) parts: Vec<&'a [f32]>,
    pub(crate) valid: &'a [bool],
}

/// The part of a computed tile's output that later blocks of the run blend.
pub(crate) struct KeptTile {
    tile: Window,
    region: Window,
    parts: Vec<Vec<f32>>,
    valid: Vec<bool>,
    /// The last block that needs it.
    pub(crate) until_block: usize,
}

impl KeptTile {
    /// The output of `output.tile`, computed for `block`, over the later blocks of `run` it
    /// touches (None if it touches none); `blocks` is the plan's `blocks()`.
    pub(crate) fn for_later_blocks(output: &TileOutput, plan: &TilePlan, blocks: &[Window], block: usize, run: &std::ops::Range<usize>) -> Option<KeptTile> {
        let later: Vec<usize> = plan.blocks_touching(&output.tile).into_iter().filter(|b| *b > block && run.contains(b)).collect();
        let region = later.iter().filter_map(|&b| output.tile.intersection(&blocks[b])).reduce(|a, b| a.union(&b))?;
        let from = output.region;
        let parts = output.parts.iter().map(|values| rows_within(values, values.len() / from.area(), &from, &region)).collect();
        Some(KeptTile { tile: output.tile, region, parts, valid: rows_within(output.valid, 1, &from, &region), until_block: *later.last()? })
    }

    fn output(&self) -> TileOutput<'_> {
        TileOutput { tile: self.tile, region: self.region, parts: self.parts.iter().map(Vec::as_slice).collect(), valid: &self.valid }
    }
}

/// The part of `values` (`[from.height, from.width, channels]`) over `region`, within `from`.
fn rows_within<T: Copy>(values: &[T], channels: usize, from: &Window, region: &Window) -> Vec<T> {
    let mut kept = Vec::with_capacity(channels * region.area());
    for y in region.y..region.bottom() {
        let row = (y - from.y) * from.width + region.x - from.x;
        kept.extend_from_slice(&values[row * channels..(row + region.width) * channels]);
    }
    kept
}

/// One block's blend in progress: the tiles touching it are added in row-major order, those
/// computed for earlier blocks (kept) merged in between the block's own as they arrive.
pub(crate) struct BlockBlend {
    acc: BlendAccumulator,
    valid: Vec<bool>,
    /// Kept tiles touching the block not yet added, row-major (`(y, x)` keys).
    kept_to_add: Vec<(usize, usize)>,
}

impl BlockBlend {
    /// `channels`: of each part of the model's output.
    pub(crate) fn new(window: Window, channels: &[usize], kept: &BTreeMap<(usize, usize), KeptTile>) -> Self {
        let kept_to_add = kept.iter().filter(|(_, k)| k.region.intersection(&window).is_some()).map(|(key, _)| *key).collect();
        BlockBlend { acc: BlendAccumulator::new(window, channels), valid: vec![false; window.area()], kept_to_add }
    }

    pub(crate) fn add(&mut self, output: &TileOutput, weights: &[f32]) {
        let window = self.acc.window;
        self.acc.add(&output.tile, &output.region, &output.parts, weights);
        let Some(common) = output.tile.intersection(&window).and_then(|c| c.intersection(&output.region)) else { return };
        for y in common.y..common.bottom() {
            let to = (y - window.y) * window.width + common.x - window.x;
            let from = (y - output.region.y) * output.region.width + common.x - output.region.x;
            self.valid[to..][..common.width].copy_from_slice(&output.valid[from..][..common.width]);
        }
    }

    /// Adds the kept tiles that come before `tile` in row-major order.
    pub(crate) fn add_kept_before(&mut self, tile: &Window, kept: &BTreeMap<(usize, usize), KeptTile>, weights: &[f32]) {
        let before = self.kept_to_add.partition_point(|key| *key < (tile.y, tile.x));
        for key in self.kept_to_add.drain(..before).collect::<Vec<_>>() {
            self.add(&kept[&key].output(), weights);
        }
    }

    /// `cut`: the model's decision threshold as log-odds of change (`Decision::log_odds`).
    pub(crate) fn finish(mut self, kept: &BTreeMap<(usize, usize), KeptTile>, weights: &[f32], classes: Option<usize>, cut: f32) -> Result<BlockMaps> {
        for key in std::mem::take(&mut self.kept_to_add) {
            self.add(&kept[&key].output(), weights);
        }
        let window = self.acc.window;
        block_maps(window, self.acc.finish(), &self.valid, classes, cut)
            .ok_or_else(|| anyhow!("the model produced non-finite scores for the block of columns {}..{}, rows {}..{}", window.x, window.right(), window.y, window.bottom()))
    }
}

/// Blended scores → change (log-odds of change above `cut`: 0 is the argmax of the two change
/// scores), probability (their softmax),
/// classes (argmax per date) and from→to codes; nodata where either date is masked. None if a
/// blended score is not finite. On the rayon pool (`--threads`): the model waits meanwhile.
fn block_maps(window: Window, blended: BlendedSums, valid: &[bool], classes: Option<usize>, cut: f32) -> Option<BlockMaps> {
    let plane = window.area();
    let BlendedSums { parts, weights } = blended;
    if !parts.iter().all(|part| part.par_chunks(1 << 16).all(all_finite)) {
        return None;
    }
    let (mut change, mut probability) = (Vec::with_capacity(plane), Vec::with_capacity(plane));
    (parts[0].par_chunks_exact(2), &weights, valid)
        .into_par_iter()
        .map(|(logits, weight, &valid)| {
            let (unchanged, changed) = (logits[0] / weight, logits[1] / weight);
            if valid { (u8::from(changed - unchanged > cut), 1.0 / (1.0 + (unchanged - changed).exp())) } else { (255, f32::NAN) }
        })
        .unzip_into_vecs(&mut change, &mut probability);
    // Class scores are only compared per pixel, which a positive weight does not change: their
    // weighted sums give the classes without dividing 2 × k channels.
    let semantic = classes.map(|k| {
        let (from, to) = (class_argmax(&parts[1], k), class_argmax(&parts[2], k));
        let mut maps = [vec![255u8; plane], vec![255u8; plane], vec![255u8; plane]];
        for p in (0..plane).filter(|&p| valid[p]) {
            maps[0][p] = from[p];
            maps[1][p] = to[p];
            maps[2][p] = from_to::encode(from[p], to[p], change[p] == 1, k);
        }
        maps
    });
    Some(BlockMaps { window, change, probability, semantic })
}

/// Per pixel of `scores` `[pixels, k]`, the first of its `k` classes with the highest score.
fn class_argmax(scores: &[f32], k: usize) -> Vec<u8> {
    scores
        .par_chunks_exact(k)
        .map(|pixel| {
            let (mut best, mut top) = (0, pixel[0]);
            for (c, &score) in pixel.iter().enumerate().skip(1) {
                if score > top {
                    (best, top) = (c as u8, score);
                }
            }
            best
        })
        .collect()
}

/// Whether no value is NaN or infinite: `v × 0` is 0 for finite values and NaN otherwise,
/// summed in 16 independent lanes so that the loop vectorises.
fn all_finite(values: &[f32]) -> bool {
    let mut lanes = [0f32; 16];
    let chunks = values.chunks_exact(16);
    let rest = chunks.remainder().iter().fold(0.0, |sum, v| sum + v * 0.0);
    for chunk in chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane += v * 0.0;
        }
    }
    (lanes.iter().sum::<f32>() + rest) == 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A random-looking score per channel and pixel, in [-5, 5), from a few hundred values.
    fn score(tile: usize, channel: usize, pixel: usize) -> f32 {
        ((channel * 1_000_003 + pixel * 7919 + tile * 104_729) % 1000) as f32 / 100.0 - 5.0
    }

    /// Channels `0..channels` of one tile as parts of `sizes` channels, pixel-interleaved.
    fn parts(tile: usize, pixels: usize, sizes: &[usize]) -> Vec<Vec<f32>> {
        let mut first = 0;
        sizes
            .iter()
            .map(|&c| {
                let part = (0..pixels).flat_map(|p| (first..first + c).map(move |channel| score(tile, channel, p))).collect();
                first += c;
                part
            })
            .collect()
    }

    /// Class maps come from weighted sums, the probability from averages: both as if every
    /// channel were averaged over the overlapping tiles (computed here in f64).
    #[test]
    fn block_maps_match_averaged_scores() {
        let (tile, overlap, k) = (32, 12, 5);
        let sizes = [2, k, k];
        let plan = TilePlan::new(72, 52, tile, overlap, 8).unwrap();
        let (block, weights) = (plan.blocks()[0], changedet_raster::tiling::taper(tile, overlap));
        let plane = block.area();
        let mut acc = BlendAccumulator::new(block, &sizes);
        let (mut sums, mut total) = (vec![0f64; (2 + 2 * k) * plane], vec![0f64; plane]);
        for (t, window) in plan.tiles_in(&block).into_iter().enumerate() {
            let parts = parts(t, tile * tile, &sizes);
            acc.add(&window, &window, &parts.iter().map(Vec::as_slice).collect::<Vec<_>>(), &weights);
            for (y, x) in (0..tile).flat_map(|y| (0..tile).map(move |x| (y, x))) {
                let (px, py) = (window.x + x, window.y + y);
                if px < block.right() && py < block.bottom() {
                    let (w, at) = (f64::from(weights[y] * weights[x]), (py - block.y) * block.width + px - block.x);
                    for c in 0..2 + 2 * k {
                        sums[c * plane + at] += w * f64::from(score(t, c, y * tile + x));
                    }
                    total[at] += w;
                }
            }
        }
        let maps = block_maps(block, acc.finish(), &vec![true; plane], Some(k), 0.0).expect("finite scores");
        let [before, after, _] = maps.semantic.unwrap();
        let argmax = |first: usize, p: usize| (0..k).fold(0, |b, c| if sums[(first + c) * plane + p] > sums[(first + b) * plane + p] { c } else { b });
        for p in 0..plane {
            let average = |c: usize| sums[c * plane + p] / total[p];
            let probability = 1.0 / (1.0 + (average(0) - average(1)).exp());
            assert!((f64::from(maps.probability[p]) - probability).abs() < 1e-5, "pixel {p}");
            assert_eq!((before[p] as usize, after[p] as usize), (argmax(2, p), argmax(2 + k, p)), "pixel {p}");
        }
        assert!(before.iter().any(|&c| c > 0) && after.contains(&0), "the classes vary");
    }

    /// A NaN or an infinity in any part's scores, on a masked pixel too, gives no maps.
    #[test]
    fn a_non_finite_score_gives_no_maps() {
        let (side, k) = (8, 3);
        let window = Window::new(0, 0, side, side);
        let mut valid = vec![true; side * side];
        valid[5] = false;
        for (part, at, bad) in [(0, 9, f32::NAN), (1, 5 * k + 1, f32::INFINITY), (2, 63 * k, f32::NEG_INFINITY), (0, 2 * 5, f32::NAN)] {
            let mut parts = parts(0, side * side, &[2, k, k]);
            let blend = |parts: &[Vec<f32>]| {
                let mut acc = BlendAccumulator::new(window, &[2, k, k]);
                acc.add(&window, &window, &parts.iter().map(Vec::as_slice).collect::<Vec<_>>(), &[1.0; 8]);
                block_maps(window, acc.finish(), &valid, Some(k), 0.0)
            };
            assert!(blend(&parts).is_some());
            parts[part][at] = bad;
            assert!(blend(&parts).is_none(), "{bad} in part {part} at {at}");
        }
    }
}
