//! A staged map's overviews, built block by block as its blocks are written, so that turning it
//! into a COG copies them instead of computing them after the last block. Each level halves the
//! one before it: probabilities average their valid children (NaN = nodata), class maps take the
//! top-left child; both as GDAL computes them (tested against its COG driver's own overviews).

use crate::Window;

/// A map value type and its 2:1 reduction.
pub trait Halve: gdal::raster::GdalType + Copy {
    /// `values` `[height, width]` → `[⌈height/2⌉, ⌈width/2⌉]`.
    fn halve(values: &[Self], width: usize, height: usize) -> Vec<Self>;
}

/// Probabilities: the mean of the valid children, NaN where none is.
impl Halve for f32 {
    fn halve(values: &[f32], width: usize, height: usize) -> Vec<f32> {
        reduce(values, width, height, |children| {
            // In f64, as GDAL sums, so that the bits are its own.
            let (sum, count) = children.iter().filter(|v| !v.is_nan()).fold((0f64, 0u8), |(s, n), &v| (s + f64::from(v), n + 1));
            if count == 0 { f32::NAN } else { (sum / f64::from(count)) as f32 }
        })
    }
}

/// Classes: the top-left child, as GDAL's nearest neighbour picks at 2:1.
impl Halve for u8 {
    fn halve(values: &[u8], width: usize, height: usize) -> Vec<u8> {
        reduce(values, width, height, |children| children[0])
    }
}

/// Applies `pick` to the children of each pixel of the halved raster (row-major, up to four).
fn reduce<T: Copy>(values: &[T], width: usize, height: usize, pick: impl Fn(&[T]) -> T) -> Vec<T> {
    assert_eq!(values.len(), width * height);
    let (half_w, half_h) = (width.div_ceil(2), height.div_ceil(2));
    let mut out = Vec::with_capacity(half_w * half_h);
    let mut children = Vec::with_capacity(4);
    for y in 0..half_h {
        let rows = 2 * y..(2 * y + 2).min(height);
        for x in 0..half_w {
            children.clear();
            for row in rows.clone() {
                children.extend_from_slice(&values[row * width + 2 * x..row * width + (2 * x + 2).min(width)]);
            }
            out.push(pick(&children));
        }
    }
    out
}

/// The overview factors GDAL's COG driver makes for a `width × height` raster in `block`-pixel
/// tiles: halvings until a level fits in one tile (so the COG has the levels it would have had).
pub(crate) fn factors(width: usize, height: usize, block: usize) -> Vec<usize> {
    let mut factors = Vec::new();
    let mut factor = 1;
    while width.div_ceil(factor) > block || height.div_ceil(factor) > block {
        factor *= 2;
        factors.push(factor);
    }
    factors
}

/// The pixels of the next level whose children are all written once `done` (pixels of a level
/// `size` pixels large) is: those whose last child lies in `done`. With blocks written in
/// row-major order, their other children lie in `done` or in blocks written before it.
pub(crate) fn completed(done: &Window, size: (usize, usize)) -> Window {
    let axis = |start: usize, end: usize, size: usize| (start / 2, if end == size { size.div_ceil(2) } else { end / 2 });
    let (x0, x1) = axis(done.x, done.right(), size.0);
    let (y0, y1) = axis(done.y, done.bottom(), size.1);
    Window::new(x0, y0, x1.saturating_sub(x0), y1.saturating_sub(y0))
}

/// The children of `pixels` (a window of the next level) in a level `size` pixels large.
pub(crate) fn children(pixels: &Window, size: (usize, usize)) -> Window {
    let (x, y) = (2 * pixels.x, 2 * pixels.y);
    Window::new(x, y, (2 * pixels.right()).min(size.0) - x, (2 * pixels.bottom()).min(size.1) - y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_average_valid_children_and_classes_take_the_first() {
        let nan = f32::NAN;
        // 3 × 3: the right column and the bottom row have fewer children.
        let p = [0.2, 0.4, 1.0, 0.6, nan, nan, 0.1, 0.3, 0.5];
        let half = f32::halve(&p, 3, 3);
        assert_eq!(half.len(), 4);
        assert!((half[0] - 0.4).abs() < 1e-7 && half[1] == 1.0 && (half[2] - 0.2).abs() < 1e-7 && half[3] == 0.5);
        assert!(f32::halve(&[nan, nan, nan, nan], 2, 2)[0].is_nan());
        let classes = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(u8::halve(&classes, 3, 3), [1, 3, 7, 9]);
    }

    #[test]
    fn levels_stop_once_one_tile_holds_the_level() {
        assert_eq!(factors(4096, 4096, 512), [2, 4, 8]);
        assert_eq!(factors(1000, 300, 512), [2]);
        assert_eq!(factors(512, 512, 512), Vec::<usize>::new());
        assert_eq!(factors(513, 10, 512), [2]);
    }

    fn pixels(w: &Window) -> impl Iterator<Item = (usize, usize)> + '_ {
        (w.y..w.bottom()).flat_map(move |y| (w.x..w.right()).map(move |x| (x, y)))
    }

    /// Whatever the block grid (odd offsets included), written in row-major order, every pixel of
    /// the next level is completed exactly once, when all its children have been written.
    #[test]
    fn each_pixel_completes_once_after_its_children() {
        let size = (23, 17);
        let half = (12, 9);
        for (bw, bh) in [(5, 4), (6, 6), (7, 3), (23, 17)] {
            let mut written = vec![false; size.0 * size.1];
            let mut completions = vec![0; half.0 * half.1];
            for y in (0..size.1).step_by(bh) {
                for x in (0..size.0).step_by(bw) {
                    let block = Window::new(x, y, bw.min(size.0 - x), bh.min(size.1 - y));
                    for (px, py) in pixels(&block) {
                        written[py * size.0 + px] = true;
                    }
                    let done = completed(&block, size);
                    let kids = children(&done, size);
                    assert!(pixels(&kids).all(|(cx, cy)| written[cy * size.0 + cx]), "block {block:?}");
                    for (px, py) in pixels(&done) {
                        completions[py * half.0 + px] += 1;
                    }
                }
            }
            assert!(completions.iter().all(|&c| c == 1), "blocks {bw}×{bh}: {completions:?}");
        }
    }
}
