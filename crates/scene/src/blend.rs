//! Assembling one block's maps from the tiles that touch it: the block's own tiles as they
//! come from the model and the kept strips of tiles computed for earlier blocks, added in
//! row-major order (so that a pixel's value never depends on which block computed a tile), then
//! turned into change, probability and class maps.

use std::collections::BTreeMap;

use changedet_raster::tiling::{BlendAccumulator, TilePlan};
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
/// scores `[channels, region.height, region.width]`, validity `[region.height, region.width]`.
pub(crate) struct TileOutput<'a> {
    pub(crate) tile: Window,
    pub(crate) region: Window,
    pub(crate) scores: &'a [f32],
    pub(crate) valid: &'a [bool],
}

/// The part of a computed tile's output that later blocks of the run blend.
pub(crate) struct KeptTile {
    tile: Window,
    region: Window,
    scores: Vec<f32>,
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
        let (from, channels) = (output.region, output.scores.len() / output.region.area());
        let mut scores = Vec::with_capacity(channels * region.area());
        for c in 0..channels {
            for y in region.y..region.bottom() {
                let row = (c * from.height + y - from.y) * from.width + region.x - from.x;
                scores.extend_from_slice(&output.scores[row..row + region.width]);
            }
        }
        let mut valid = Vec::with_capacity(region.area());
        for y in region.y..region.bottom() {
            let row = (y - from.y) * from.width + region.x - from.x;
            valid.extend_from_slice(&output.valid[row..row + region.width]);
        }
        Some(KeptTile { tile: output.tile, region, scores, valid, until_block: *later.last()? })
    }

    fn output(&self) -> TileOutput<'_> {
        TileOutput { tile: self.tile, region: self.region, scores: &self.scores, valid: &self.valid }
    }
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
    pub(crate) fn new(window: Window, channels: usize, kept: &BTreeMap<(usize, usize), KeptTile>) -> Self {
        let kept_to_add = kept.iter().filter(|(_, k)| k.region.intersection(&window).is_some()).map(|(key, _)| *key).collect();
        BlockBlend { acc: BlendAccumulator::new(window, channels), valid: vec![false; window.area()], kept_to_add }
    }

    pub(crate) fn add(&mut self, output: &TileOutput, weights: &[f32]) {
        let window = self.acc.window;
        self.acc.add(&output.tile, &output.region, output.scores, weights);
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

    pub(crate) fn finish(mut self, kept: &BTreeMap<(usize, usize), KeptTile>, weights: &[f32], classes: Option<usize>) -> BlockMaps {
        for key in std::mem::take(&mut self.kept_to_add) {
            self.add(&kept[&key].output(), weights);
        }
        block_maps(self.acc, &self.valid, classes)
    }
}

/// Blended scores → change (argmax of the two change scores), probability (their softmax),
/// classes (argmax per date) and from→to codes; nodata where either date is masked.
fn block_maps(acc: BlendAccumulator, valid: &[bool], classes: Option<usize>) -> BlockMaps {
    let window = acc.window;
    let plane = window.area();
    // Class scores are only compared per pixel, which a positive weight does not change: their
    // weighted sums give the classes without dividing 2 × k planes (1 GB per ClearSCD block).
    let scores = acc.finish(2);
    let mut change = vec![255u8; plane];
    let mut probability = vec![f32::NAN; plane];
    for p in (0..plane).filter(|&p| valid[p]) {
        let (unchanged, changed) = (scores[p], scores[plane + p]);
        change[p] = u8::from(changed > unchanged);
        probability[p] = 1.0 / (1.0 + (unchanged - changed).exp());
    }
    let semantic = classes.map(|k| {
        let (from, to) = (class_argmax(&scores[2 * plane..], plane, k), class_argmax(&scores[(2 + k) * plane..], plane, k));
        let mut maps = [vec![255u8; plane], vec![255u8; plane], vec![255u8; plane]];
        for p in (0..plane).filter(|&p| valid[p]) {
            maps[0][p] = from[p];
            maps[1][p] = to[p];
            maps[2][p] = from_to::encode(from[p], to[p], change[p] == 1, k);
        }
        maps
    });
    BlockMaps { window, change, probability, semantic }
}

/// Per pixel, the first of the `k` class planes (each `plane` long, one after the other in
/// `scores`) with the highest score. Plane by plane, so that memory is read in order.
fn class_argmax(scores: &[f32], plane: usize, k: usize) -> Vec<u8> {
    let mut best = vec![0u8; plane];
    let mut best_score = scores[..plane].to_vec();
    for c in 1..k {
        for ((class, top), &score) in best.iter_mut().zip(best_score.iter_mut()).zip(&scores[c * plane..(c + 1) * plane]) {
            if score > *top {
                (*class, *top) = (c as u8, score);
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plane-by-plane argmax picks, per pixel, what a scan of its k scores picks, ties going
    /// to the first class (scores drawn from a few values so that ties are common).
    #[test]
    fn class_argmax_is_the_first_maximum_of_each_pixel() {
        let (plane, k) = (257, 6);
        let scores: Vec<f32> = (0..plane * k).map(|i| ((i * 7919 + 13) % 5) as f32 - 2.0).collect();
        let best = class_argmax(&scores, plane, k);
        for (p, &class) in best.iter().enumerate() {
            let expected = (0..k).fold(0, |b, c| if scores[c * plane + p] > scores[b * plane + p] { c } else { b });
            assert_eq!(class as usize, expected, "pixel {p}");
        }
        assert!(best.iter().any(|&c| c > 0) && best.contains(&0));
    }

    /// Class maps come from weighted sums, the probability from averages: both as if every
    /// channel were averaged over the overlapping tiles (computed here in f64).
    #[test]
    fn block_maps_match_averaged_scores() {
        let (tile, overlap, k) = (32, 12, 5);
        let channels = 2 + 2 * k;
        let plan = TilePlan::new(72, 52, tile, overlap, 8).unwrap();
        let (block, weights) = (plan.blocks()[0], changedet_raster::tiling::taper(tile, overlap));
        let mut acc = BlendAccumulator::new(block, channels);
        let (mut sums, mut total) = (vec![0f64; channels * block.area()], vec![0f64; block.area()]);
        for (t, window) in plan.tiles_in(&block).into_iter().enumerate() {
            let scores: Vec<f32> = (0..channels * tile * tile).map(|i| ((i * 7919 + t * 104_729) % 1000) as f32 / 100.0 - 5.0).collect();
            acc.add(&window, &window, &scores, &weights);
            for (c, y, x) in (0..channels).flat_map(|c| (0..tile).flat_map(move |y| (0..tile).map(move |x| (c, y, x)))) {
                let (px, py) = (window.x + x, window.y + y);
                if px < block.right() && py < block.bottom() {
                    let (w, at) = (f64::from(weights[y] * weights[x]), (py - block.y) * block.width + px - block.x);
                    sums[c * block.area() + at] += w * f64::from(scores[(c * tile + y) * tile + x]);
                    total[at] += if c == 0 { w } else { 0.0 };
                }
            }
        }
        let maps = block_maps(acc, &vec![true; block.area()], Some(k));
        let [before, after, _] = maps.semantic.unwrap();
        let plane = block.area();
        let argmax = |first: usize, p: usize| (0..k).fold(0, |b, c| if sums[(first + c) * plane + p] > sums[(first + b) * plane + p] { c } else { b });
        for p in 0..plane {
            let average = |c: usize| sums[c * plane + p] / total[p];
            let probability = 1.0 / (1.0 + (average(0) - average(1)).exp());
            assert!((f64::from(maps.probability[p]) - probability).abs() < 1e-5, "pixel {p}");
            assert_eq!((before[p] as usize, after[p] as usize), (argmax(2, p), argmax(2 + k, p)), "pixel {p}");
        }
    }
}
