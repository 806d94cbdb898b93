//! Semantic change labels: each date's land-cover class map plus the change map, as the
//! semantic change detection datasets store them.

use std::path::{Path, PathBuf};

use changedet_raster::Raster;

use crate::palette::{Rgb, SECOND};
use crate::{DataError, IGNORE, Result};

/// Where a pair's semantic labels are and how they are coded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SemanticLabels {
    /// One RGB file (Hi-UCD after ClearSCD's preparation): red = date-1 class, green = date-2
    /// class (0..K−1, K = unlabeled), blue = change (0/1, 255 = unlabeled).
    Packed(PathBuf),
    /// One RGB palette file per date (SECOND): class colours where changed, white elsewhere.
    Palette([PathBuf; 2]),
}

impl SemanticLabels {
    pub fn paths(&self) -> Vec<&PathBuf> {
        match self {
            SemanticLabels::Packed(p) => vec![p],
            SemanticLabels::Palette([a, b]) => vec![a, b],
        }
    }
}

/// Decoded labels of one pair: class maps with values 0..K (K = unlabeled) and the change map
/// (0/1/[`IGNORE`]).
pub struct DecodedSemantic {
    pub classes: [Raster; 2],
    pub change: Raster,
}

const WHITE: Rgb = [255, 255, 255];

/// A SECOND label colour as a class index; white (no change) is the unlabeled class 6.
pub fn second_class(colour: Rgb) -> Option<u8> {
    match SECOND.iter().position(|&p| p == colour) {
        Some(i) => Some(i as u8),
        None => (colour == WHITE).then_some(SECOND.len() as u8),
    }
}

fn bad_values(path: &Path, found: impl IntoIterator<Item = u8>, expected: String) -> DataError {
    let mut found: Vec<u8> = found.into_iter().collect();
    found.sort_unstable();
    found.dedup();
    DataError::LabelValues { path: path.to_owned(), found, expected }
}

pub fn decode(labels: &SemanticLabels, classes: usize) -> Result<DecodedSemantic> {
    let k = classes as u8;
    match labels {
        SemanticLabels::Packed(path) => {
            let mask = changedet_raster::read_rgb(path)?;
            let (w, h) = mask.size();
            let channel = |c: usize| mask.data.iter().skip(c).step_by(3).copied().collect::<Vec<u8>>();
            let (a, b, change) = (channel(0), channel(1), channel(2));
            if let Some(&bad) = a.iter().chain(&b).find(|&&v| v > k) {
                let found = a.iter().chain(&b).copied().filter(|&v| v > k).chain([bad]);
                return Err(bad_values(path, found, format!("classes 0..{} with {k} = unlabeled in red and green", k - 1)));
            }
            if change.iter().any(|&v| v > 1 && v != IGNORE) {
                let found = change.iter().copied().filter(|&v| v > 1 && v != IGNORE);
                return Err(bad_values(path, found, format!("change 0/1 with {IGNORE} = unlabeled in blue")));
            }
            Ok(DecodedSemantic { classes: [Raster::new(w, h, 1, a), Raster::new(w, h, 1, b)], change: Raster::new(w, h, 1, change) })
        }
        SemanticLabels::Palette([first, second]) => {
            if classes != SECOND.len() {
                return Err(DataError::Batch { message: format!("SECOND palette labels have {} classes, not {classes}", SECOND.len()) });
            }
            let decode_date = |path: &PathBuf| -> Result<(Raster, Vec<bool>)> {
                let rgb = changedet_raster::read_rgb(path)?;
                let (w, h) = rgb.size();
                let mut unchanged = Vec::with_capacity(rgb.data.len() / 3);
                let mut out = Vec::with_capacity(rgb.data.len() / 3);
                for px in rgb.data.chunks_exact(3) {
                    let colour = [px[0], px[1], px[2]];
                    unchanged.push(colour == WHITE);
                    out.push(match second_class(colour) {
                        Some(class) => class,
                        None => {
                            let expected = format!("SECOND's palette (white = no change, then {SECOND:?})");
                            return Err(DataError::LabelValues { path: path.clone(), found: colour.to_vec(), expected });
                        }
                    });
                }
                Ok((Raster::new(w, h, 1, out), unchanged))
            };
            let (a, unchanged_a) = decode_date(first)?;
            let (b, unchanged_b) = decode_date(second)?;
            let change = unchanged_a.iter().zip(&unchanged_b).map(|(&x, &y)| u8::from(!(x && y))).collect();
            let (w, h) = a.size();
            Ok(DecodedSemantic { classes: [a, b], change: Raster::new(w, h, 1, change) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_masks_split_into_classes_and_change_and_reject_unknown_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mask.png");
        // pixels: (class 2 → 3, changed), (unlabeled 9 → 9, change unlabeled)
        changedet_raster::write_rgb_png(&path, 2, 1, &[2, 3, 1, 9, 9, 255]).unwrap();
        let d = decode(&SemanticLabels::Packed(path.clone()), 9).unwrap();
        assert_eq!((d.classes[0].data.clone(), d.classes[1].data.clone(), d.change.data.clone()), (vec![2, 9], vec![3, 9], vec![1, 255]));
        changedet_raster::write_rgb_png(&path, 2, 1, &[2, 3, 1, 12, 9, 0]).unwrap();
        let err = decode(&SemanticLabels::Packed(path.clone()), 9).err().unwrap().to_string();
        assert!(err.contains("mask.png") && err.contains("[12]"), "{err}");
        changedet_raster::write_rgb_png(&path, 2, 1, &[2, 3, 7, 1, 1, 0]).unwrap();
        assert!(decode(&SemanticLabels::Packed(path), 9).is_err());
    }

    #[test]
    fn second_palettes_decode_to_indices_with_white_as_no_change() {
        let dir = tempfile::tempdir().unwrap();
        let (p1, p2) = (dir.path().join("l1.png"), dir.path().join("l2.png"));
        let [water, ground] = [SECOND[0], SECOND[1]];
        changedet_raster::write_rgb_png(&p1, 2, 1, &[water, WHITE].concat()).unwrap();
        changedet_raster::write_rgb_png(&p2, 2, 1, &[ground, WHITE].concat()).unwrap();
        let d = decode(&SemanticLabels::Palette([p1.clone(), p2.clone()]), 6).unwrap();
        assert_eq!((d.classes[0].data.clone(), d.classes[1].data.clone(), d.change.data.clone()), (vec![0, 6], vec![1, 6], vec![1, 0]));
        changedet_raster::write_rgb_png(&p2, 2, 1, &[1, 2, 3, 255, 255, 255]).unwrap();
        let err = decode(&SemanticLabels::Palette([p1, p2]), 6).err().unwrap().to_string();
        assert!(err.contains("l2.png") && err.contains("[1, 2, 3]"), "{err}");
    }
}
