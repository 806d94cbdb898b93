//! mmseg's `PhotoMetricDistortion` with ChangeCLIP's settings: brightness ±10 (p ½), contrast
//! ×[0.8, 1.2] (p ½, before or after the colour steps at random), saturation ×[0.8, 1.2] (p ½)
//! and hue ±10 in OpenCV's 0–180 units (p ½), each step clipped to 0–255 and rounded down to
//! 8 bits as the reference's `astype(uint8)` does. Like the reference, which treats its RGB
//! pixels as OpenCV's BGR, the HSV steps read channel 0 as blue. OpenCV's 8-bit HSV conversion
//! uses lookup tables; this one computes the same 8-bit quantities in floating point, so a pixel
//! can differ by a level.

use rand::Rng;

use changedet_raster::Raster;

const BRIGHTNESS: f32 = 10.0;
const CONTRAST: (f32, f32) = (0.8, 1.2);
const SATURATION: (f32, f32) = (0.8, 1.2);
const HUE: i32 = 10;

/// `clip(x · alpha + beta, 0, 255)` truncated to 8 bits.
fn convert(x: u8, alpha: f32, beta: f32) -> u8 {
    (x as f32 * alpha + beta).clamp(0.0, 255.0) as u8
}

/// OpenCV's 8-bit BGR → HSV (H in 0..180).
fn to_hsv([b, g, r]: [u8; 3]) -> [u8; 3] {
    let (bf, gf, rf) = (b as f32, g as f32, r as f32);
    let v = bf.max(gf).max(rf);
    let diff = v - bf.min(gf).min(rf);
    let s = if v > 0.0 { diff * 255.0 / v } else { 0.0 };
    let h = if diff == 0.0 {
        0.0
    } else if v == rf {
        60.0 * (gf - bf) / diff
    } else if v == gf {
        120.0 + 60.0 * (bf - rf) / diff
    } else {
        240.0 + 60.0 * (rf - gf) / diff
    };
    let h = if h < 0.0 { h + 360.0 } else { h };
    [((h / 2.0).round() as u32 % 180) as u8, s.round() as u8, v as u8]
}

/// OpenCV's 8-bit HSV → BGR.
fn to_bgr([h, s, v]: [u8; 3]) -> [u8; 3] {
    let (h, s, v) = (h as f32 * 2.0 / 60.0, s as f32 / 255.0, v as f32);
    let sector = h.floor();
    let f = h - sector;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - s * f), v * (1.0 - s * (1.0 - f)));
    let (r, g, b) = match sector as i32 % 6 {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    };
    [b, g, r].map(|c| c.round().clamp(0.0, 255.0) as u8)
}

fn map_pixels(image: &mut Raster, f: impl Fn([u8; 3]) -> [u8; 3]) {
    for px in image.data.chunks_exact_mut(3) {
        px.copy_from_slice(&f([px[0], px[1], px[2]]));
    }
}

/// Distorts one date's RGB image in place.
pub fn distort(image: &mut Raster, rng: &mut impl Rng) {
    if rng.random_bool(0.5) {
        let beta = rng.random_range(-BRIGHTNESS..BRIGHTNESS);
        image.data.iter_mut().for_each(|x| *x = convert(*x, 1.0, beta));
    }
    let contrast_first = rng.random_bool(0.5);
    let contrast = |image: &mut Raster, rng: &mut dyn rand::RngCore| {
        if rng.random_bool(0.5) {
            let alpha = rng.random_range(CONTRAST.0..CONTRAST.1);
            image.data.iter_mut().for_each(|x| *x = convert(*x, alpha, 0.0));
        }
    };
    if contrast_first {
        contrast(image, rng);
    }
    if rng.random_bool(0.5) {
        let alpha = rng.random_range(SATURATION.0..SATURATION.1);
        map_pixels(image, |bgr| {
            let [h, s, v] = to_hsv(bgr);
            to_bgr([h, convert(s, alpha, 0.0), v])
        });
    }
    if rng.random_bool(0.5) {
        let delta = rng.random_range(-HUE..HUE);
        map_pixels(image, |bgr| {
            let [h, s, v] = to_hsv(bgr);
            to_bgr([((h as i32 + delta).rem_euclid(180)) as u8, s, v])
        });
    }
    if !contrast_first {
        contrast(image, rng);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn hsv_round_trips_within_its_8_bit_quantisation() {
        // Hue is kept in 2° steps, as OpenCV's 8-bit HSV does, which moves a channel by a few levels.
        for bgr in [[0, 0, 0], [255, 255, 255], [10, 200, 30], [250, 10, 128], [90, 90, 91], [3, 140, 255]] {
            let back = to_bgr(to_hsv(bgr));
            assert!(bgr.iter().zip(back).all(|(a, b)| (*a as i32 - b as i32).abs() <= 4), "{bgr:?} → {back:?}");
        }
        assert_eq!(to_hsv([0, 0, 255]), [0, 255, 255], "pure red (BGR) has hue 0");
        assert_eq!(to_hsv([255, 0, 0]), [120, 255, 255], "pure blue: 240° → 120");
    }

    #[test]
    fn distortion_keeps_the_image_plausible_and_varies() {
        let image = Raster::new(4, 4, 3, (0..48).map(|i| (i * 5) as u8).collect());
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let outputs: Vec<Vec<u8>> = (0..20)
            .map(|_| {
                let mut copy = image.clone();
                distort(&mut copy, &mut rng);
                copy.data
            })
            .collect();
        assert!(outputs.iter().any(|o| *o != image.data) && outputs.iter().any(|o| *o != outputs[0]));
        let mean = |d: &[u8]| d.iter().map(|&x| x as f64).sum::<f64>() / d.len() as f64;
        assert!(outputs.iter().all(|o| (mean(o) - mean(&image.data)).abs() < 40.0));
    }
}
