use rand::Rng;

use changedet_raster::Raster;

use crate::image::{Image, Move};
use crate::{DataError, Result};

/// One decoded pair: both dates (8-bit RGB or 16-bit bands), the decoded change label (0/1/[`crate::IGNORE`]) and,
/// for semantic change datasets, each date's class map (0..K, K = unlabeled).
#[derive(Debug, Clone)]
pub struct PairSample {
    pub name: String,
    pub before: Image,
    pub after: Image,
    pub label: Option<Raster>,
    pub semantic: Option<[Raster; 2]>,
}

/// Augmentations. Geometric ones apply identically to both dates and the labels so that they
/// stay registered; the photometric one is drawn for each date on its own.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Augment {
    /// Random square crop of this side (no crop when the image is not larger).
    pub crop: Option<u32>,
    pub hflip: bool,
    pub vflip: bool,
    /// Random rotation by a multiple of 90°.
    pub rot90: bool,
    /// With probability ½, a rotation by an angle uniform in ± this many degrees onto a canvas
    /// that holds the whole rotated image, resized back to the original size (ClearSCD's
    /// transform: it also shrinks the content). Images are interpolated bilinearly with black
    /// corners; labels take the nearest pixel, with corners unlabeled.
    pub rotate_degrees: Option<f32>,
    /// Rotate `rotate_degrees` on the same canvas instead (mmseg's `RandomRotate`, ChangeCLIP's
    /// ±180°): corners black in the images, unlabeled in the labels; nothing is resized.
    pub rotate_in_place: bool,
    /// mmseg's photometric distortion (brightness, contrast, saturation, hue), drawn for each
    /// date independently, as ChangeCLIP's `MultiImgPhotoMetricDistortion`.
    pub photometric: bool,
    /// Value of unlabeled pixels in semantic class maps (the class count K), for rotated corners.
    pub unlabeled_class: u8,
}

impl Augment {
    /// The training default: flips and 90° rotations, with an optional crop.
    pub fn train(crop: Option<u32>) -> Self {
        Augment { crop, hflip: true, vflip: true, rot90: true, ..Augment::default() }
    }

    /// Applies the augmentations to `sample`. Rotations by any angle and the photometric
    /// distortion are defined on 8-bit colour images: a pair of 16-bit bands is refused by them.
    pub fn apply(&self, sample: &mut PairSample, rng: &mut impl Rng) -> Result<()> {
        if let Some(size) = self.crop {
            let (w, h) = sample.before.size();
            if w > size || h > size {
                let cw = size.min(w);
                let ch = size.min(h);
                let x = rng.random_range(0..=w - cw);
                let y = rng.random_range(0..=h - ch);
                for_each(sample, Move::Crop { x, y, w: cw, h: ch });
            }
        }
        if self.hflip && rng.random_bool(0.5) {
            for_each(sample, Move::HorizontalFlip);
        }
        if self.vflip && rng.random_bool(0.5) {
            for_each(sample, Move::VerticalFlip);
        }
        if self.rot90 {
            for _ in 0..rng.random_range(0..4u8) {
                for_each(sample, Move::Rotate90);
            }
        }
        if self.rotate_degrees.is_none() && !self.photometric {
            return Ok(());
        }
        let name = sample.name.clone();
        let (Some(before), Some(after)) = (sample.before.as_u8_mut(), sample.after.as_u8_mut()) else {
            return Err(DataError::Batch {
                message: format!("pair '{name}': rotations by any angle and the photometric distortion work on 8-bit colour images, not on 16-bit bands; train without them (--no-augment, or a recipe without them)"),
            });
        };
        if let Some(max) = self.rotate_degrees.filter(|_| rng.random_bool(0.5)) {
            let degrees = rng.random_range(-max..=max);
            let (w, h) = before.size();
            let expand = !self.rotate_in_place;
            let image = |r: &Raster| resize(&rotate(r, degrees, 0, true, expand), w, h, true);
            let label = |r: &Raster, fill| resize(&rotate(r, degrees, fill, false, expand), w, h, false);
            *before = image(before);
            *after = image(after);
            if let Some(change) = sample.label.as_mut() {
                *change = label(change, crate::IGNORE);
            }
            for map in sample.semantic.iter_mut().flatten() {
                *map = label(map, self.unlabeled_class);
            }
        }
        if self.photometric {
            crate::photometric::distort(before, rng);
            crate::photometric::distort(after, rng);
        }
        Ok(())
    }
}

/// Value of `r` at real position (x, y) (pixel centres at integers), bilinear or nearest,
/// `fill` outside.
fn sample_at(r: &Raster, x: f32, y: f32, c: usize, fill: u8, bilinear: bool) -> u8 {
    let (w, h) = (r.width as i64, r.height as i64);
    let at = |xi: i64, yi: i64| -> f32 {
        if xi < 0 || yi < 0 || xi >= w || yi >= h { fill as f32 } else { r.data[(yi * w + xi) as usize * r.channels + c] as f32 }
    };
    if !bilinear {
        return at(x.round() as i64, y.round() as i64) as u8;
    }
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let (xi, yi) = (x0 as i64, y0 as i64);
    let top = at(xi, yi) * (1.0 - fx) + at(xi + 1, yi) * fx;
    let bottom = at(xi, yi + 1) * (1.0 - fx) + at(xi + 1, yi + 1) * fx;
    (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8
}

/// Counter-clockwise rotation by `degrees` about the centre, onto a canvas that holds the whole
/// image (`expand`, PIL's `rotate(expand=True)`) or onto the same canvas (OpenCV's
/// `warpAffine`, as mmcv's `imrotate`).
fn rotate(r: &Raster, degrees: f32, fill: u8, bilinear: bool, expand: bool) -> Raster {
    let (w, h) = (r.width as f32, r.height as f32);
    let (sin, cos) = degrees.to_radians().sin_cos();
    // The small margin keeps 90° from growing a pixel through rounding in sin/cos.
    let (nw, nh) = if expand {
        ((w * cos.abs() + h * sin.abs() - 1e-3).ceil().max(1.0) as u32, (w * sin.abs() + h * cos.abs() - 1e-3).ceil().max(1.0) as u32)
    } else {
        (r.width, r.height)
    };
    let (cx, cy, ncx, ncy) = (w / 2.0, h / 2.0, nw as f32 / 2.0, nh as f32 / 2.0);
    let mut data = Vec::with_capacity(nw as usize * nh as usize * r.channels);
    for y in 0..nh {
        for x in 0..nw {
            let (dx, dy) = (x as f32 + 0.5 - ncx, y as f32 + 0.5 - ncy);
            let (sx, sy) = (dx * cos - dy * sin + cx - 0.5, dx * sin + dy * cos + cy - 0.5);
            data.extend((0..r.channels).map(|c| sample_at(r, sx, sy, c, fill, bilinear)));
        }
    }
    Raster::new(nw, nh, r.channels, data)
}

/// Resize to `width` × `height`, aligning pixel areas (PIL's and OpenCV's convention).
fn resize(r: &Raster, width: u32, height: u32, bilinear: bool) -> Raster {
    if r.size() == (width, height) {
        return r.clone();
    }
    let (sx, sy) = (r.width as f32 / width as f32, r.height as f32 / height as f32);
    let mut data = Vec::with_capacity(width as usize * height as usize * r.channels);
    for y in 0..height {
        for x in 0..width {
            let (u, v) = ((x as f32 + 0.5) * sx - 0.5, (y as f32 + 0.5) * sy - 0.5);
            let (u, v) = if bilinear { (u, v) } else { (u.max(0.0), v.max(0.0)) };
            data.extend((0..r.channels).map(|c| sample_at(r, u, v, c, 0, bilinear)));
        }
    }
    Raster::new(width, height, r.channels, data)
}

fn for_each(sample: &mut PairSample, m: Move) {
    sample.before = sample.before.moved(m);
    sample.after = sample.after.moved(m);
    if let Some(label) = sample.label.as_mut() {
        *label = m.apply(label);
    }
    for map in sample.semantic.iter_mut().flatten() {
        *map = m.apply(map);
    }
}

/// A `side`² window of `sample` at (`x`, `y`), copying only the window's pixels.
pub(crate) fn cropped_sample(sample: &PairSample, x: u32, y: u32, side: u32) -> PairSample {
    let window = Move::Crop { x, y, w: side, h: side };
    PairSample {
        name: sample.name.clone(),
        before: sample.before.moved(window),
        after: sample.after.moved(window),
        label: sample.label.as_ref().map(|r| window.apply(r)),
        semantic: sample.semantic.as_ref().map(|maps| maps.each_ref().map(|r| window.apply(r))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn grid(w: u32, h: u32) -> Raster {
        Raster::new(w, h, 1, (0..(w * h) as u8).collect())
    }

    #[test]
    fn arbitrary_rotation_agrees_with_the_exact_ones() {
        let r = grid(5, 3);
        assert_eq!(rotate(&r, 0.0, 9, false, true), r);
        assert_eq!(rotate(&r, 90.0, 9, false, true), Move::Rotate90.apply(&r));
        assert_eq!(rotate(&r, 0.0, 0, true, true), r);
        // 45°: the canvas grows to hold the corners, which are filled.
        let turned = rotate(&grid(4, 4), 45.0, 200, false, true);
        assert_eq!(turned.size(), (6, 6));
        assert_eq!(turned.data[0], 200);
        assert_eq!(resize(&turned, 4, 4, false).size(), (4, 4));
        // In place: same canvas; 180° is the exact half turn; 45° fills the corners.
        let square = grid(4, 4);
        assert_eq!(rotate(&square, 180.0, 9, false, false), Move::Rotate90.apply(&Move::Rotate90.apply(&square)));
        let turned = rotate(&square, 45.0, 200, false, false);
        assert_eq!((turned.size(), turned.data[0]), ((4, 4), 200));
    }

    #[test]
    fn dates_and_label_stay_registered() {
        let rgb = |w, h| Raster::new(w, h, 3, (0..w * h).flat_map(|i| [i as u8, i as u8, i as u8]).collect());
        let mut s = PairSample { name: "x".into(), before: Image::U8(rgb(8, 8)), after: Image::U8(rgb(8, 8)), label: Some(grid(8, 8)), semantic: Some([grid(8, 8), grid(8, 8)]) };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for _ in 0..10 {
            Augment::train(Some(5)).apply(&mut s, &mut rng).unwrap();
            let Image::U8(before) = &s.before else { panic!("stays 8-bit") };
            let first: Vec<u8> = before.data.iter().step_by(3).copied().collect();
            assert_eq!(first, s.label.as_ref().unwrap().data);
            assert!(s.semantic.iter().flatten().all(|m| m.data == first));
            assert_eq!(s.before, s.after);
        }
        assert_eq!(s.before.size(), (5, 5));
    }
}
