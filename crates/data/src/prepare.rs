//! Turning dataset downloads into the layouts changedet (and the reference code) read.
//!
//! * Hi-UCD: what ClearSCD's `clip_image.py`, `deal_hiucd.py` and `write_path.py` do, in one
//!   pass: 512×512 tiles at stride 512 in row-major order named `{k}_{name}` (plus tiles flush
//!   with the right/bottom border when a side is not a multiple of 512), masks remapped to
//!   classes 0..8 with 9 = unlabeled and change 0/1 with 255 = unlabeled, and split lists of five
//!   absolute paths per pair (`imgA imgB mask mask mask`).
//! * SECOND: RGB palette labels → class-index maps (6 = no change) and the change mask, in the
//!   `A/ B/ change/` layout that `changedet metrics` reads as ground truth.

use std::fs;
use std::path::{Path, PathBuf};

use changedet_raster::{Raster, read_rgb, write_gray_png, write_rgb_png};

use crate::image::Move;
use crate::semantic::{SemanticLabels, decode};
use crate::{DataError, IGNORE, Result};

pub const HIUCD_TILE: u32 = 512;
const HIUCD_UNLABELED: u8 = 9;

fn layout_error(path: &Path, message: impl Into<String>) -> DataError {
    DataError::Layout { path: path.to_owned(), message: message.into() }
}

fn sorted_images(dir: &Path) -> Result<Vec<String>> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map_err(|e| layout_error(dir, e.to_string()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
        .collect();
    names.sort();
    Ok(names)
}

/// Tile origins along one side: every multiple of `tile` that fits, and a last tile flush with
/// the border when the side is not a multiple.
fn tile_origins(side: u32, tile: u32) -> Vec<u32> {
    let mut origins: Vec<u32> = (0..).map(|i| i * tile).take_while(|o| o + tile <= side).collect();
    if !side.is_multiple_of(tile) && side > tile {
        origins.push(side - tile);
    }
    origins
}

/// `dir/9` when the download keeps Hi-UCD's zoom-level sub-folder, else `dir`.
fn zoom_level(dir: PathBuf) -> PathBuf {
    let nested = dir.join("9");
    if nested.is_dir() { nested } else { dir }
}

/// Hi-UCD's raw mask → ClearSCD's: classes − 1 with 0 → 9, change − 1 with 0 → 255.
fn remap_hiucd_mask(mask: &mut Raster, path: &Path) -> Result<()> {
    for px in mask.data.chunks_exact_mut(3) {
        if px[0] > 9 || px[1] > 9 || px[2] > 2 {
            let expected = "raw Hi-UCD codes: classes 0..9 (0 = unlabeled) in red and green, change 0..2 in blue".to_owned();
            return Err(DataError::LabelValues { path: path.to_owned(), found: px.to_vec(), expected });
        }
        for v in &mut px[..2] {
            *v = if *v == 0 { HIUCD_UNLABELED } else { *v - 1 };
        }
        px[2] = if px[2] == 0 { IGNORE } else { px[2] - 1 };
    }
    Ok(())
}

#[derive(Debug, Default)]
pub struct PrepareReport {
    /// (split, source pairs, tiles written).
    pub splits: Vec<(String, usize, usize)>,
}

/// Prepares a raw Hi-UCD (mini) download: `SRC/{train,val,test}/{YEAR1,YEAR2}[/9]/*.png` and
/// `SRC/SPLIT/mask_merge/YEAR1_YEAR2[/9]/*.png` → `OUT/SPLIT/{YEAR1,YEAR2,mask}_512/` and
/// `OUT/SPLIT.txt`. Splits without masks (Hi-UCD's public test set) get images only.
pub fn prepare_hiucd(src: &Path, out: &Path) -> Result<PrepareReport> {
    let mut report = PrepareReport::default();
    for split in ["train", "val", "test"] {
        let dir = src.join(split);
        if !dir.is_dir() {
            continue;
        }
        let mut years: Vec<String> = fs::read_dir(&dir)
            .map_err(|e| layout_error(&dir, e.to_string()))?
            .filter_map(|e| e.ok().and_then(|e| e.file_name().to_str().map(str::to_owned)))
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
            .collect();
        years.sort();
        let [first, second] = years.as_slice() else {
            return Err(layout_error(&dir, format!("expected two year folders (e.g. 2017/ and 2018/), found {years:?}")));
        };
        let (dir_a, dir_b) = (zoom_level(dir.join(first)), zoom_level(dir.join(second)));
        let mask_dir = zoom_level(dir.join("mask_merge").join(format!("{first}_{second}")));
        let has_masks = mask_dir.is_dir();
        let target = out.join(split);
        let (out_a, out_b, out_mask) = (target.join(format!("{first}_512")), target.join(format!("{second}_512")), target.join("mask_512"));
        for d in [&out_a, &out_b].into_iter().chain(has_masks.then_some(&out_mask)) {
            fs::create_dir_all(d).map_err(|e| layout_error(d, format!("cannot create: {e}")))?;
        }
        let names = sorted_images(&dir_a)?;
        let mut lines = String::new();
        let mut tiles = 0;
        for name in &names {
            let (path_a, path_b) = (dir_a.join(name), dir_b.join(name));
            let (a, b) = (read_rgb(&path_a)?, read_rgb(&path_b)?);
            let mask = if has_masks {
                let path = mask_dir.join(name);
                let mut mask = read_rgb(&path)?;
                remap_hiucd_mask(&mut mask, &path)?;
                Some((mask, path))
            } else {
                None
            };
            for (other, path) in [(&b, &path_b)].into_iter().chain(mask.as_ref().map(|(m, p)| (m, p))) {
                if other.size() != a.size() {
                    let ((bw, bh), (ow, oh)) = (a.size(), other.size());
                    return Err(DataError::SizeMismatch { name: name.clone(), before: path_a.clone(), bw, bh, other: path.clone(), ow, oh });
                }
            }
            let (w, h) = a.size();
            if w < HIUCD_TILE || h < HIUCD_TILE {
                return Err(layout_error(&path_a, format!("{w}×{h} is smaller than a {HIUCD_TILE}×{HIUCD_TILE} tile")));
            }
            let mut k = 0;
            for &y in &tile_origins(h, HIUCD_TILE) {
                for &x in &tile_origins(w, HIUCD_TILE) {
                    let tile_name = format!("{k}_{name}");
                    let cut = |r: &Raster| Move::Crop { x, y, w: HIUCD_TILE, h: HIUCD_TILE }.apply(r);
                    write_rgb_png(&out_a.join(&tile_name), HIUCD_TILE, HIUCD_TILE, &cut(&a).data)?;
                    write_rgb_png(&out_b.join(&tile_name), HIUCD_TILE, HIUCD_TILE, &cut(&b).data)?;
                    if let Some((mask, _)) = &mask {
                        let mask_path = out_mask.join(&tile_name);
                        write_rgb_png(&mask_path, HIUCD_TILE, HIUCD_TILE, &cut(mask).data)?;
                        let absolute = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_owned()).display().to_string();
                        let m = absolute(&mask_path);
                        lines.push_str(&format!("{} {} {m} {m} {m}\n", absolute(&out_a.join(&tile_name)), absolute(&out_b.join(&tile_name))));
                    }
                    k += 1;
                    tiles += 1;
                }
            }
        }
        if has_masks {
            let list = out.join(format!("{split}.txt"));
            write_text(&list, &lines)?;
        }
        report.splits.push((split.to_owned(), names.len(), tiles));
    }
    if report.splits.is_empty() {
        return Err(layout_error(src, "no train/, val/ or test/ folder: not a Hi-UCD download"));
    }
    Ok(report)
}

fn write_text(path: &Path, text: &str) -> Result<()> {
    changedet_raster::atomic::write_bytes(path, text.as_bytes()).map_err(|e| layout_error(path, format!("cannot write: {e}")))
}

/// Prepares SECOND: `SRC/SPLIT/{label1,label2}/*.png` (RGB palette) → `OUT/SPLIT/A/`, `B/`
/// (class indices 0..5, 6 = no change) and `change/` (0/1).
pub fn prepare_second(src: &Path, out: &Path) -> Result<PrepareReport> {
    let mut report = PrepareReport::default();
    for split in ["train", "val", "test"] {
        let dir = src.join(split);
        let (label1, label2) = (dir.join("label1"), dir.join("label2"));
        if !label1.is_dir() || !label2.is_dir() {
            continue;
        }
        let target = out.join(split);
        for d in ["A", "B", "change"] {
            fs::create_dir_all(target.join(d)).map_err(|e| layout_error(&target.join(d), format!("cannot create: {e}")))?;
        }
        let names = sorted_images(&label1)?;
        for name in &names {
            let decoded = decode(&SemanticLabels::Palette([label1.join(name), label2.join(name)]), 6)?;
            let (w, h) = decoded.change.size();
            write_gray_png(&target.join("A").join(name), w, h, &decoded.classes[0].data)?;
            write_gray_png(&target.join("B").join(name), w, h, &decoded.classes[1].data)?;
            write_gray_png(&target.join("change").join(name), w, h, &decoded.change.data)?;
        }
        report.splits.push((split.to_owned(), names.len(), names.len()));
    }
    if report.splits.is_empty() {
        return Err(layout_error(src, "no SPLIT/label1/ and SPLIT/label2/ folders: not a SECOND download"));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cover_the_image_as_clip_image_does() {
        assert_eq!(tile_origins(1024, 512), [0, 512]);
        assert_eq!(tile_origins(1300, 512), [0, 512, 788]);
        assert_eq!(tile_origins(512, 512), [0]);
    }
}
