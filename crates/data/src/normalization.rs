use serde::{Deserialize, Serialize};

/// How pixels become model inputs. Fixed statistics are on the 0–255 scale of 8-bit RGB;
/// per-image statistics work on any scale and any number of bands (16-bit Sentinel-2 bands).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Normalization {
    /// `(pixel / 255 − mean) / std` per RGB channel (ImageNet statistics for most models).
    Fixed { mean: [f64; 3], std: [f64; 3] },
    /// Each image minus its mean, over the standard deviation, both over all its pixels and
    /// bands (Daudt et al.'s code, `(I - I.mean()) / I.std()`), so that inputs of any
    /// radiometry look alike. Scenes are normalised tile by tile.
    PerImage(PerImage),
    /// One image's per-image statistics, the same for every band, in the units of
    /// [`Normalization::Fixed`] (`mean` and `std` of the pixel values over 255).
    Resolved { image_mean: f64, image_std: f64 },
}

/// The tag of [`Normalization::PerImage`] in configurations: `"per-image-z-score"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PerImage {
    #[serde(rename = "per-image-z-score")]
    ZScore,
}

impl Normalization {
    pub const IMAGENET: Normalization = Normalization::Fixed { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
    pub const PER_IMAGE: Normalization = Normalization::PerImage(PerImage::ZScore);

    /// The statistics this normalisation applies to (crops of) the interleaved image `rgb`:
    /// itself when fixed, the image's own mean and spread when per image. Training crops and
    /// patches are normalised with their whole image's statistics, as the reference z-scores
    /// each image before cutting patches.
    pub fn for_image(&self, rgb: &[u8]) -> Normalization {
        self.for_values(rgb.iter().map(|&v| v as f32))
    }

    /// [`Normalization::for_image`] for any pixel values (a scene's bands after their scaling,
    /// all bands together; 16-bit bands).
    pub fn for_values(&self, values: impl Iterator<Item = f32> + Clone) -> Normalization {
        match self {
            Normalization::Fixed { .. } | Normalization::Resolved { .. } => *self,
            Normalization::PerImage(_) => {
                let n = values.clone().count().max(1) as f64;
                let mean = values.clone().map(|v| v as f64).sum::<f64>() / n;
                let spread = (values.map(|v| (v as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
                // A constant image has no spread: centre it and leave its scale alone.
                let std = if spread > 1e-6 { spread } else { 1.0 };
                Normalization::Resolved { image_mean: mean / 255.0, image_std: std / 255.0 }
            }
        }
    }

    /// Whether the statistics come from each image (see [`Normalization::for_image`]).
    pub fn is_per_image(&self) -> bool {
        matches!(self, Normalization::PerImage(_))
    }

    /// Whether images of `bands` bands can be normalised: fixed statistics are RGB's.
    pub fn check_bands(&self, bands: usize) -> Result<(), String> {
        match self {
            Normalization::Fixed { .. } if bands != 3 => {
                Err(format!("the model normalises 3 bands (RGB) with fixed statistics, but the images have {bands}: train a model with per-image normalisation on them"))
            }
            _ => Ok(()),
        }
    }

    /// Writes an interleaved RGB image into planar channels (CHW) of `out`.
    pub fn write_chw(&self, rgb: &[u8], out: &mut [f32]) {
        self.write_planar(rgb, 3, out);
    }

    /// Writes an interleaved image of `bands` bands into planar channels of `out`, normalised.
    pub fn write_planar<T: Copy + Into<f32>>(&self, pixels: &[T], bands: usize, out: &mut [f32]) {
        let plane = pixels.len() / bands;
        debug_assert_eq!(out.len(), pixels.len());
        for c in 0..bands {
            for (d, px) in out[c * plane..(c + 1) * plane].iter_mut().zip(pixels.chunks_exact(bands)) {
                *d = px[c].into();
            }
        }
        self.normalise_planar(out, bands, None);
    }

    /// Normalises planar values `[bands, h, w]` (not necessarily whole: 16-bit scenes after
    /// their scaling) in place. Pixels outside `valid` (when given) neither count towards
    /// per-image statistics nor keep a value: they become 0, the mean.
    pub fn normalise_planar(&self, values: &mut [f32], bands: usize, valid: Option<&[bool]>) {
        let plane = values.len() / bands;
        let is_valid = |i: usize| valid.is_none_or(|v| v[i % plane]);
        let counted = values.iter().enumerate().filter(|&(i, _)| is_valid(i)).map(|(_, &v)| v);
        let statistics = self.for_values(counted);
        for (c, channel) in values.chunks_mut(plane).enumerate() {
            let (mean, std) = match statistics {
                Normalization::Fixed { mean, std } => (mean[c], std[c]),
                Normalization::Resolved { image_mean, image_std } => (image_mean, image_std),
                Normalization::PerImage(_) => unreachable!("for_values resolves per-image statistics"),
            };
            match valid {
                Some(valid) => channel.iter_mut().zip(valid).for_each(|(v, &ok)| *v = if ok { fixed(*v, mean, std) } else { 0.0 }),
                None => channel.iter_mut().for_each(|v| *v = fixed(*v, mean, std)),
            }
        }
    }
}

/// One value under fixed statistics. The reference transforms divide by 255 in f32, then
/// subtract and divide with Python floats (numpy promotes to f64 and rounds back to f32 after
/// each step); doing the same makes our inputs bit-identical to theirs.
fn fixed(value: f32, mean: f64, std: f64) -> f32 {
    let scaled = value / 255.0;
    let centred = (scaled as f64 - mean) as f32;
    (centred as f64 / std) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_image_z_score_has_zero_mean_and_unit_spread() {
        let rgb: Vec<u8> = (0..48u8).map(|v| v * 5).collect();
        let mut out = vec![0f32; rgb.len()];
        Normalization::PER_IMAGE.write_chw(&rgb, &mut out);
        let mean = out.iter().map(|&v| v as f64).sum::<f64>() / out.len() as f64;
        let var = out.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / out.len() as f64;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5, "mean {mean}, variance {var}");
    }

    #[test]
    fn a_crop_takes_its_whole_images_statistics() {
        let rgb: Vec<u8> = (0..48u8).map(|v| v * 5).collect();
        let mut whole = vec![0f32; rgb.len()];
        Normalization::PER_IMAGE.write_chw(&rgb, &mut whole);
        let mut again = vec![0f32; rgb.len()];
        Normalization::PER_IMAGE.for_image(&rgb).write_chw(&rgb, &mut again);
        assert!(whole.iter().zip(&again).all(|(a, b)| (a - b).abs() < 1e-5));
        let crop = &rgb[..12];
        let mut cropped = vec![0f32; crop.len()];
        Normalization::PER_IMAGE.for_image(&rgb).write_chw(crop, &mut cropped);
        assert!((cropped[0] - whole[0]).abs() < 1e-5, "the crop keeps the image's statistics");
    }

    #[test]
    fn configurations_name_the_normalisation() {
        let json = serde_json::to_string(&Normalization::PER_IMAGE).unwrap();
        assert_eq!(json, "\"per-image-z-score\"");
        assert_eq!(serde_json::from_str::<Normalization>(&json).unwrap(), Normalization::PER_IMAGE);
        let fixed: Normalization = serde_json::from_str(r#"{"mean":[0.5,0.5,0.5],"std":[0.5,0.5,0.5]}"#).unwrap();
        assert_eq!(fixed, Normalization::Fixed { mean: [0.5; 3], std: [0.5; 3] });
    }
}
