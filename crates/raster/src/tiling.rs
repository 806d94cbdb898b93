//! Covering a scene of any size with overlapping model tiles, and blending their outputs.
//!
//! Tiles sit on one global grid (every `stride = tile − overlap` pixels, the last one flush with
//! the edge). The scene is cut into square *blocks* of whole strides; a block is finished from
//! the tiles that touch it, so its memory is bounded whatever the scene size. A run over a range
//! of blocks computes each tile once, in the first block of the range it touches, and keeps the
//! part of its output that falls in later blocks (strips about the overlap wide) until they are
//! finished. A pixel blends the tiles covering it in row-major order, whichever block or shard
//! computed them, so shards of the block list reassemble into the unsharded result exactly
//! (given a model whose output for a tile does not depend on the other tiles of its batch).

use rayon::prelude::*;
use std::ops::Range;

/// A rectangle of pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Window {
    pub x: usize,
    pub y: usize,
    pub width: usize,
    pub height: usize,
}

impl Window {
    pub fn new(x: usize, y: usize, width: usize, height: usize) -> Self {
        Window { x, y, width, height }
    }

    pub fn right(&self) -> usize {
        self.x + self.width
    }

    pub fn bottom(&self) -> usize {
        self.y + self.height
    }

    pub fn area(&self) -> usize {
        self.width * self.height
    }

    pub fn intersection(&self, other: &Window) -> Option<Window> {
        let (x, y) = (self.x.max(other.x), self.y.max(other.y));
        let (right, bottom) = (self.right().min(other.right()), self.bottom().min(other.bottom()));
        (x < right && y < bottom).then(|| Window::new(x, y, right - x, bottom - y))
    }

    /// The smallest window holding both.
    pub fn union(&self, other: &Window) -> Window {
        let (x, y) = (self.x.min(other.x), self.y.min(other.y));
        Window::new(x, y, self.right().max(other.right()) - x, self.bottom().max(other.bottom()) - y)
    }
}

/// Tile origins along a side of `len`: every `stride`, the last one flush with the end; a side
/// shorter than the tile gets one tile at 0 (the caller pads it).
pub fn tile_origins(len: usize, tile: usize, stride: usize) -> Vec<usize> {
    if len <= tile {
        return vec![0];
    }
    let count = (len - tile).div_ceil(stride) + 1;
    (0..count).map(|i| (i * stride).min(len - tile)).collect()
}

/// The tile grid and block partition of a `width × height` scene.
#[derive(Clone, Debug)]
pub struct TilePlan {
    pub width: usize,
    pub height: usize,
    pub tile: usize,
    pub overlap: usize,
    /// Block side in pixels: a whole number of strides.
    pub block: usize,
    xs: Vec<usize>,
    ys: Vec<usize>,
}

impl TilePlan {
    pub fn new(width: usize, height: usize, tile: usize, overlap: usize, block_strides: usize) -> Result<Self, String> {
        if width == 0 || height == 0 {
            return Err("the scene is empty".into());
        }
        if tile == 0 || overlap >= tile {
            return Err(format!("the overlap ({overlap} px) must be smaller than the tile ({tile} px)"));
        }
        if block_strides == 0 {
            return Err("blocks must hold at least one stride".into());
        }
        let stride = tile - overlap;
        Ok(TilePlan {
            width,
            height,
            tile,
            overlap,
            block: block_strides * stride,
            xs: tile_origins(width, tile, stride),
            ys: tile_origins(height, tile, stride),
        })
    }

    pub fn stride(&self) -> usize {
        self.tile - self.overlap
    }

    /// Every tile of the scene (clipped to it when the scene is smaller than a tile).
    pub fn tile_count(&self) -> usize {
        self.xs.len() * self.ys.len()
    }

    /// The blocks in row-major order.
    pub fn blocks(&self) -> Vec<Window> {
        let mut blocks = Vec::new();
        for y in (0..self.height).step_by(self.block) {
            for x in (0..self.width).step_by(self.block) {
                blocks.push(Window::new(x, y, self.block.min(self.width - x), self.block.min(self.height - y)));
            }
        }
        blocks
    }

    /// The blocks of shard `index` (0-based) out of `count`: a contiguous run in row-major
    /// order, so that each shard's output stays compact.
    pub fn shard(&self, index: usize, count: usize) -> Range<usize> {
        let n = self.blocks().len();
        index * n / count..(index + 1) * n / count
    }

    /// Indices (in `blocks()` order) of the blocks `window` touches, ascending.
    pub fn blocks_touching(&self, window: &Window) -> Vec<usize> {
        let per_row = self.width.div_ceil(self.block);
        let columns = window.x / self.block..=(window.right() - 1).min(self.width - 1) / self.block;
        let rows = window.y / self.block..=(window.bottom() - 1).min(self.height - 1) / self.block;
        rows.flat_map(|row| columns.clone().map(move |column| row * per_row + column)).collect()
    }

    /// The tiles a run over the blocks `run` computes for `block`: those touching it that touch
    /// no earlier block of the run, row-major.
    pub fn tiles_computed_in(&self, block: usize, run: &Range<usize>) -> Vec<Window> {
        let window = self.blocks()[block];
        let first_of_run = |tile: &Window| self.blocks_touching(tile).into_iter().find(|b| run.contains(b));
        self.tiles_in(&window).into_iter().filter(|tile| first_of_run(tile) == Some(block)).collect()
    }

    /// The tiles touching `block`, row-major, clipped to the scene.
    pub fn tiles_in(&self, block: &Window) -> Vec<Window> {
        let mut tiles = Vec::new();
        for &y in &self.ys {
            for &x in &self.xs {
                let tile = Window::new(x, y, self.tile.min(self.width), self.tile.min(self.height));
                if tile.intersection(block).is_some() {
                    tiles.push(tile);
                }
            }
        }
        tiles
    }
}

/// Per-position weights along a tile side: sin² ramps over `overlap` pixels at both ends, 1
/// between. Two tiles overlapping by exactly `overlap` sum to 1 at every pixel of the overlap
/// (sin² + cos²), and no weight is 0, so the normalised blend is smooth and defined everywhere.
pub fn taper(tile: usize, overlap: usize) -> Vec<f32> {
    (0..tile)
        .map(|i| {
            let distance = i.min(tile - 1 - i) as f32 + 0.5;
            if distance >= overlap as f32 {
                1.0
            } else {
                let s = (std::f32::consts::FRAC_PI_2 * distance / overlap as f32).sin();
                s * s
            }
        })
        .collect()
}

/// Weighted sums of tile outputs over one block. The values come in parts (a model's outputs),
/// each pixel-interleaved `[height, width, channels]` as channels-last tensors hold them, and are
/// summed in that layout: a tile row of a part is one contiguous run of values.
pub struct BlendAccumulator {
    pub window: Window,
    /// Per part: its channels and its sums `[height, width, channels]`.
    parts: Vec<(usize, Vec<f32>)>,
    weights: Vec<f32>,
}

/// The rows of `sums` (`[window.height, window.width, channels]`) under `common`, with their
/// scene row, as a parallel iterator.
fn block_rows<'a>(sums: &'a mut [f32], window: &Window, common: &Window, channels: usize) -> impl ParallelIterator<Item = (usize, &'a mut [f32])> {
    let width = window.width * channels;
    let (x, first_row, row_len) = ((common.x - window.x) * channels, common.y, common.width * channels);
    sums[(common.y - window.y) * width..(common.bottom() - window.y) * width]
        .par_chunks_mut(width)
        .enumerate()
        .map(move |(i, row)| (first_row + i, &mut row[x..][..row_len]))
}

/// A finished blend: per part the weighted sums `[height, width, channels]`, and each pixel's
/// total weight (a pixel's average is its sum divided by it).
pub struct BlendedSums {
    pub parts: Vec<Vec<f32>>,
    pub weights: Vec<f32>,
}

impl BlendAccumulator {
    /// `channels`: of each part.
    pub fn new(window: Window, channels: &[usize]) -> Self {
        let parts = channels.iter().map(|&c| (c, vec![0.0; c * window.area()])).collect();
        BlendAccumulator { window, parts, weights: vec![0.0; window.area()] }
    }

    /// Adds a tile's output over `region` (scene coordinates, within the tile's square),
    /// `parts` each `[region.height, region.width, channels]`, weighted by `taper ⊗ taper` at
    /// each pixel's place in the tile.
    pub fn add(&mut self, tile: &Window, region: &Window, parts: &[&[f32]], taper: &[f32]) {
        debug_assert!(parts.iter().zip(&self.parts).all(|(values, (c, _))| values.len() == c * region.area()));
        let Some(common) = tile.intersection(&self.window).and_then(|c| c.intersection(region)) else { return };
        let window = self.window;
        let row_taper = &taper[common.x - tile.x..][..common.width];
        block_rows(&mut self.weights, &window, &common, 1).for_each(|(y, sums)| {
            for (sum, t) in sums.iter_mut().zip(row_taper) {
                *sum += taper[y - tile.y] * t;
            }
        });
        for ((c, sums), values) in self.parts.iter_mut().zip(parts) {
            // The row taper repeated for each channel of a pixel.
            let channel_taper: Vec<f32> = row_taper.iter().flat_map(|&t| std::iter::repeat_n(t, *c)).collect();
            block_rows(sums, &window, &common, *c).for_each(|(y, sums)| {
                let (row_weight, from) = (taper[y - tile.y], ((y - region.y) * region.width + common.x - region.x) * *c);
                for ((sum, t), v) in sums.iter_mut().zip(&channel_taper).zip(&values[from..][..common.width * *c]) {
                    *sum += row_weight * t * v;
                }
            });
        }
    }

    pub fn finish(self) -> BlendedSums {
        BlendedSums { parts: self.parts.into_iter().map(|(_, sums)| sums).collect(), weights: self.weights }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_cover_the_side_and_end_flush() {
        assert_eq!(tile_origins(1024, 256, 192), vec![0, 192, 384, 576, 768]);
        assert_eq!(tile_origins(1000, 256, 192), vec![0, 192, 384, 576, 744]);
        assert_eq!(tile_origins(256, 256, 192), vec![0]);
        assert_eq!(tile_origins(50, 64, 48), vec![0]);
    }

    #[test]
    fn overlapping_tapers_sum_to_one() {
        let (tile, overlap) = (64, 16);
        let w = taper(tile, overlap);
        for j in 0..overlap {
            let sum = w[tile - overlap + j] + w[j];
            assert!((sum - 1.0).abs() < 1e-6, "{j}: {sum}");
        }
        assert!(w.iter().all(|&v| v > 0.0 && v <= 1.0));
    }

    #[test]
    fn every_block_pixel_is_covered_and_shards_partition_the_blocks() {
        let plan = TilePlan::new(1000, 700, 128, 32, 3).unwrap();
        let blocks = plan.blocks();
        assert_eq!(blocks.iter().map(Window::area).sum::<usize>(), 1000 * 700);
        for block in &blocks {
            let mut covered = vec![false; block.area()];
            for tile in plan.tiles_in(block) {
                let common = tile.intersection(block).unwrap();
                for y in common.y..common.bottom() {
                    for x in common.x..common.right() {
                        covered[(y - block.y) * block.width + x - block.x] = true;
                    }
                }
            }
            assert!(covered.iter().all(|&c| c), "{block:?}");
        }
        let shards: Vec<_> = (0..3).map(|i| plan.shard(i, 3)).collect();
        assert_eq!(shards[0].start, 0);
        assert_eq!(shards[2].end, blocks.len());
        assert!(shards.windows(2).all(|w| w[0].end == w[1].start));
    }

    #[test]
    fn a_run_computes_each_tile_it_needs_once() {
        let plan = TilePlan::new(1000, 700, 128, 32, 2).unwrap();
        let blocks = plan.blocks();
        for run in [0..blocks.len(), plan.shard(1, 3), 5..6] {
            let computed: Vec<Window> = run.clone().flat_map(|b| plan.tiles_computed_in(b, &run)).collect();
            let needed: std::collections::BTreeSet<(usize, usize)> = run.clone().flat_map(|b| plan.tiles_in(&blocks[b])).map(|t| (t.y, t.x)).collect();
            let once: std::collections::BTreeSet<(usize, usize)> = computed.iter().map(|t| (t.y, t.x)).collect();
            assert_eq!(once.len(), computed.len(), "{run:?}: a tile computed twice");
            assert_eq!(once, needed, "{run:?}");
        }
        // Blocks of 192 px, 6 per row.
        assert_eq!(plan.blocks_touching(&Window::new(180, 180, 128, 128)), vec![0, 1, 6, 7]);
        assert_eq!(plan.blocks_touching(&Window::new(872, 572, 128, 128)), vec![16, 17, 22, 23]);
    }

    /// A position-independent tile output blends back to itself exactly: no seams, whatever the
    /// tiling, in a one-channel part and in an interleaved two-channel part alike.
    #[test]
    fn blending_a_smooth_field_reproduces_it() {
        let (width, height, tile, overlap) = (300, 200, 64, 24);
        let field = |x: usize, y: usize| (x as f32 * 0.05).sin() + y as f32 * 0.01;
        let plan = TilePlan::new(width, height, tile, overlap, 2).unwrap();
        let weights = taper(tile, overlap);
        for block in plan.blocks() {
            let mut acc = BlendAccumulator::new(block, &[1, 2]);
            for t in plan.tiles_in(&block) {
                let plane: Vec<f32> = (0..tile * tile).map(|i| field(t.x + i % tile, t.y + i / tile)).collect();
                let interleaved: Vec<f32> = plane.iter().flat_map(|&v| [v, -2.0 * v]).collect();
                acc.add(&t, &Window::new(t.x, t.y, tile, tile), &[&plane, &interleaved], &weights);
            }
            let blended = acc.finish();
            for (i, weight) in blended.weights.iter().enumerate() {
                let expected = field(block.x + i % block.width, block.y + i / block.width);
                let averages = [blended.parts[0][i], blended.parts[1][2 * i], blended.parts[1][2 * i + 1]].map(|sum| sum / weight);
                for (average, expected) in averages.into_iter().zip([expected, expected, -2.0 * expected]) {
                    assert!((average - expected).abs() < 1e-5, "{block:?} {i}: {average} vs {expected}");
                }
            }
        }
    }
}
