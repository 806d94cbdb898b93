use rand::Rng;

use changedet_raster::Raster;

/// One decoded pair: both dates (RGB), the decoded change label (0/1/[`crate::IGNORE`]) and,
/// for semantic change datasets, each date's class map (0..K, K = unlabeled).
#[derive(Debug, Clone)]
pub struct PairSample {
    pub name: String,
    pub before: Raster,
    pub after: Raster,
    pub label: Option<Raster>,
    pub semantic: Option<[Raster; 2]>,
}

/// Geometric augmentations, applied identically to both dates and the label so that they stay
/// registered. Photometric changes are per-model (see the model configs) and not done here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Augment {
    /// Random square crop of this side (no crop when the image is not larger).
    pub crop: Option<u32>,
    pub hflip: bool,
    pub vflip: bool,
    /// Random rotation by a multiple of 90°.
    pub rot90: bool,
}

impl Augment {
    /// The training default: flips and 90° rotations, with an optional crop.
    pub fn train(crop: Option<u32>) -> Self {
        Augment { crop, hflip: true, vflip: true, rot90: true }
    }

    pub fn apply(&self, sample: &mut PairSample, rng: &mut impl Rng) {
        if let Some(size) = self.crop {
            let (w, h) = sample.before.size();
            if w > size || h > size {
                let cw = size.min(w);
                let ch = size.min(h);
                let x = rng.random_range(0..=w - cw);
                let y = rng.random_range(0..=h - ch);
                for_each(sample, |r| crop(r, x, y, cw, ch));
            }
        }
        if self.hflip && rng.random_bool(0.5) {
            for_each(sample, hflip);
        }
        if self.vflip && rng.random_bool(0.5) {
            for_each(sample, vflip);
        }
        if self.rot90 {
            for _ in 0..rng.random_range(0..4u8) {
                for_each(sample, rotate90);
            }
        }
    }
}

fn for_each(sample: &mut PairSample, f: impl Fn(&Raster) -> Raster) {
    sample.before = f(&sample.before);
    sample.after = f(&sample.after);
    if let Some(label) = sample.label.as_mut() {
        *label = f(label);
    }
    for map in sample.semantic.iter_mut().flatten() {
        *map = f(map);
    }
}

fn remap(r: &Raster, width: u32, height: u32, source: impl Fn(usize, usize) -> (usize, usize)) -> Raster {
    let c = r.channels;
    let mut data = Vec::with_capacity(width as usize * height as usize * c);
    for y in 0..height as usize {
        for x in 0..width as usize {
            let (sx, sy) = source(x, y);
            let i = (sy * r.width as usize + sx) * c;
            data.extend_from_slice(&r.data[i..i + c]);
        }
    }
    Raster::new(width, height, c, data)
}

pub(crate) fn crop(r: &Raster, x0: u32, y0: u32, w: u32, h: u32) -> Raster {
    remap(r, w, h, |x, y| (x + x0 as usize, y + y0 as usize))
}

fn hflip(r: &Raster) -> Raster {
    let w = r.width as usize;
    remap(r, r.width, r.height, |x, y| (w - 1 - x, y))
}

fn vflip(r: &Raster) -> Raster {
    let h = r.height as usize;
    remap(r, r.width, r.height, |x, y| (x, h - 1 - y))
}

/// Rotation by 90° counter-clockwise (as `numpy.rot90`).
fn rotate90(r: &Raster) -> Raster {
    let w = r.width as usize;
    remap(r, r.height, r.width, |x, y| (w - 1 - y, x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn grid(w: u32, h: u32) -> Raster {
        Raster::new(w, h, 1, (0..(w * h) as u8).collect())
    }

    #[test]
    fn transforms_move_pixels_as_numpy_does() {
        let r = grid(3, 2); // [[0,1,2],[3,4,5]]
        assert_eq!(hflip(&r).data, [2, 1, 0, 5, 4, 3]);
        assert_eq!(vflip(&r).data, [3, 4, 5, 0, 1, 2]);
        let rot = rotate90(&r); // np.rot90 → [[2,5],[1,4],[0,3]]
        assert_eq!((rot.width, rot.height), (2, 3));
        assert_eq!(rot.data, [2, 5, 1, 4, 0, 3]);
        assert_eq!(crop(&r, 1, 1, 2, 1).data, [4, 5]);
    }

    #[test]
    fn dates_and_label_stay_registered() {
        let rgb = |w, h| Raster::new(w, h, 3, (0..w * h).flat_map(|i| [i as u8, i as u8, i as u8]).collect());
        let mut s = PairSample { name: "x".into(), before: rgb(8, 8), after: rgb(8, 8), label: Some(grid(8, 8)), semantic: Some([grid(8, 8), grid(8, 8)]) };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for _ in 0..10 {
            Augment::train(Some(5)).apply(&mut s, &mut rng);
            let first: Vec<u8> = s.before.data.iter().step_by(3).copied().collect();
            assert_eq!(first, s.label.as_ref().unwrap().data);
            assert!(s.semantic.iter().flatten().all(|m| m.data == first));
            assert_eq!(s.before, s.after);
        }
        assert_eq!(s.before.size(), (5, 5));
    }
}
