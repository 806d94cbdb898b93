//! The maps a prediction writes, for image pairs (PNG, by `predict`) and for scenes (COG, by
//! the scene pipeline): which maps a model's outputs make, and their colours. One definition,
//! so that pair and scene outputs agree.

use std::path::Path;

use serde::{Deserialize, Serialize};

use changedet_raster::geo::MapKind;
use changedet_raster::{RasterError, from_to, write_gray_png, write_rgb_png};

use crate::palette::{colourise, default_palette};

/// The maps of a binary model (`classes: None`) or of a semantic one with K classes: `change`
/// (0/1), `probability` and, for semantic models, `before_classes`, `after_classes` and
/// `fromto` (see [`from_to`]), each class map with its colours.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapSet {
    pub classes: Option<usize>,
}

/// One pair's predicted maps, row-major `width × height`.
pub struct PairMaps<'a> {
    pub width: u32,
    pub height: u32,
    /// 0 unchanged, 1 changed.
    pub change: &'a [u8],
    /// Change probability in [0, 1].
    pub probability: &'a [f32],
    /// Each date's class map, for semantic models.
    pub classes: Option<[&'a [u8]; 2]>,
    /// The after image with the changes (or the errors against a label) drawn over it, RGB.
    pub overlay: &'a [u8],
}

impl MapSet {
    /// The binary change map's name (0 unchanged, 1 changed).
    pub const CHANGE: &'static str = "change";

    /// Refuses semantic models whose from→to codes would not fit a byte.
    pub fn new(classes: Option<usize>) -> Result<Self, String> {
        classes.map_or(Ok(()), from_to::check_classes)?;
        Ok(MapSet { classes })
    }

    pub fn maps(&self) -> Vec<(&'static str, MapKind)> {
        let mut maps = vec![
            (Self::CHANGE, MapKind::Classes { colours: Some(vec![[0, 0, 0], [255, 255, 255]]) }),
            ("probability", MapKind::Probability),
        ];
        if let Some(k) = self.classes {
            let palette = default_palette(k);
            let fromto = std::iter::once([0, 0, 0]).chain((0..k * k).map(|code| palette[code % k])).collect();
            maps.push(("before_classes", MapKind::Classes { colours: Some(palette.clone()) }));
            maps.push(("after_classes", MapKind::Classes { colours: Some(palette) }));
            maps.push(("fromto", MapKind::Classes { colours: Some(fromto) }));
        }
        maps
    }

    /// Writes `dir/NAME_change.png` (0/255), `NAME_probability.png` (× 255), `NAME_overlay.png`
    /// and, for semantic models, the class maps in their palette and the from→to codes.
    pub fn write_pair_pngs(&self, dir: &Path, name: &str, maps: &PairMaps) -> Result<(), RasterError> {
        let (w, h) = (maps.width, maps.height);
        let out = |map: &str| dir.join(format!("{name}_{map}.png"));
        let change: Vec<u8> = maps.change.iter().map(|&c| c * 255).collect();
        let probability: Vec<u8> = maps.probability.iter().map(|&v| (v * 255.0).round() as u8).collect();
        write_gray_png(&out("change"), w, h, &change)?;
        write_gray_png(&out("probability"), w, h, &probability)?;
        write_rgb_png(&out("overlay"), w, h, maps.overlay)?;
        if let (Some(k), Some([before, after])) = (self.classes, maps.classes) {
            let palette = default_palette(k);
            let codes: Vec<u8> = before.iter().zip(after).zip(maps.change).map(|((&a, &b), &c)| from_to::encode(a, b, c != 0, k)).collect();
            write_rgb_png(&out("before_classes"), w, h, &colourise(before, &palette))?;
            write_rgb_png(&out("after_classes"), w, h, &colourise(after, &palette))?;
            write_gray_png(&out("fromto"), w, h, &codes)?;
        }
        Ok(())
    }
}
