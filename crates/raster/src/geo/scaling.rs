//! How raw band values (uint16 reflectance, int16, float) become the 0–255 range that the models
//! were trained on; the model's own mean/std normalisation follows.

use serde::{Deserialize, Serialize};

use super::{Result, Scene};

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Scaling {
    /// 8-bit bands as they are; anything else a 2–98 % percentile stretch.
    Auto,
    /// `value / divisor × 255` (e.g. 10000 for surface reflectance, 4095 for 12-bit sensors).
    Divide { divisor: f64 },
    /// Per band, the `low`..`high` percentiles of the scene's valid pixels map to 0..255.
    Percentile { low: f64, high: f64 },
    /// `min..max` maps to 0..255 for every band.
    Range { min: f64, max: f64 },
}

impl std::str::FromStr for Scaling {
    type Err = String;
    /// `auto`, `divide:D`, `percentile:LOW:HIGH` or `range:MIN:MAX`.
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let bad = || format!("bad scaling '{s}' (auto, divide:D, percentile:LOW:HIGH, range:MIN:MAX)");
        let num = |i: usize| parts.get(i).and_then(|p| p.parse::<f64>().ok()).filter(|v| v.is_finite()).ok_or_else(bad);
        let scaling = match (parts[0], parts.len()) {
            ("auto", 1) => Scaling::Auto,
            ("divide", 2) if num(1)? > 0.0 => Scaling::Divide { divisor: num(1)? },
            ("percentile", 3) if (0.0..num(2)?).contains(&num(1)?) && num(2)? <= 100.0 => Scaling::Percentile { low: num(1)?, high: num(2)? },
            ("range", 3) if num(1)? < num(2)? => Scaling::Range { min: num(1)?, max: num(2)? },
            _ => return Err(bad()),
        };
        Ok(scaling)
    }
}

impl std::fmt::Display for Scaling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Scaling::Auto => write!(f, "auto"),
            Scaling::Divide { divisor } => write!(f, "divide:{divisor}"),
            Scaling::Percentile { low, high } => write!(f, "percentile:{low}:{high}"),
            Scaling::Range { min, max } => write!(f, "range:{min}:{max}"),
        }
    }
}

/// The linear map of one band onto 0..255, clamped. `None` leaves 8-bit values untouched, so
/// GeoTIFF inputs give exactly the model inputs of the same pixels read from PNG.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BandScale {
    pub min: f64,
    pub max: f64,
}

impl BandScale {
    pub fn apply(&self, value: f32) -> f32 {
        (((value as f64 - self.min) / (self.max - self.min)) * 255.0).clamp(0.0, 255.0) as f32
    }
}

impl Scaling {
    /// Whether resolving it for `scene` reads the scene's values (percentiles).
    pub fn reads_statistics(&self, scene: &Scene) -> bool {
        matches!(self, Scaling::Percentile { .. }) || (*self == Scaling::Auto && !scene.is_byte())
    }

    /// The per-band maps for `scene` (percentiles are taken on an overview of at most 1024
    /// pixels across, nodata excluded).
    pub fn resolve(&self, scene: &Scene) -> Result<Vec<Option<BandScale>>> {
        let scaling = match self {
            Scaling::Auto if scene.is_byte() => return Ok(vec![None; scene.band_count()]),
            Scaling::Auto => Scaling::Percentile { low: 2.0, high: 98.0 },
            other => *other,
        };
        (0..scene.band_count())
            .map(|band| {
                Ok(Some(match scaling {
                    Scaling::Divide { divisor } => BandScale { min: 0.0, max: divisor },
                    Scaling::Range { min, max } => BandScale { min, max },
                    Scaling::Percentile { low, high } => {
                        let mut values = scene.sample(band, 1024)?;
                        values.sort_by(f32::total_cmp);
                        let at = |q: f64| values.get(((values.len() - 1) as f64 * q / 100.0).round() as usize).copied().unwrap_or(0.0) as f64;
                        let (min, max) = (at(low), at(high));
                        BandScale { min, max: if max > min { max } else { min + 1.0 } }
                    }
                    Scaling::Auto => unreachable!("resolved above"),
                }))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_rule() {
        for s in ["auto", "divide:10000", "percentile:2:98", "range:-100:4000"] {
            assert_eq!(s.parse::<Scaling>().unwrap().to_string(), s);
        }
        for bad in ["divide:0", "percentile:98:2", "range:5:1", "stretch", "divide"] {
            assert!(bad.parse::<Scaling>().is_err(), "{bad}");
        }
    }

    #[test]
    fn band_scale_clamps_to_the_byte_range() {
        let s = BandScale { min: 100.0, max: 1100.0 };
        assert_eq!(s.apply(100.0), 0.0);
        assert_eq!(s.apply(600.0), 127.5);
        assert_eq!(s.apply(5000.0), 255.0);
        assert_eq!(s.apply(-5.0), 0.0);
    }
}
