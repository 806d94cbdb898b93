//! `changedet prepare` on synthetic downloads (generated here; the real Hi-UCD and SECOND are
//! not available): Hi-UCD becomes ClearSCD's tiles, remapped masks and lists, readable as
//! `hiucd:OUT`; SECOND's palette labels become index maps.

mod common;

use std::path::Path;

use changedet_data::{Dataset, DatasetSpec, load_pair};
use common::{fails, ok, s};

fn rgb(path: &Path, w: u32, h: u32, pixel: impl Fn(u32, u32) -> [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let data: Vec<u8> = (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).flat_map(|(x, y)| pixel(x, y)).collect();
    changedet_raster::write_rgb_png(path, w, h, &data).unwrap();
}

#[test]
fn hiucd_download_becomes_clearscd_tiles_masks_and_lists() {
    let tmp = tempfile::tempdir().unwrap();
    let (raw, out) = (tmp.path().join("raw"), tmp.path().join("prepared"));
    // One 1024² pair in the download's layout; the image encodes its coordinates, the mask uses
    // every raw code (classes 0..9 with 0 = unlabeled, change 0..2 with 0 = unlabeled).
    let image = |x: u32, y: u32| [(x % 256) as u8, (y % 256) as u8, ((x / 256) * 4 + y / 256) as u8];
    rgb(&raw.join("train/2017/9/a.png"), 1024, 1024, image);
    rgb(&raw.join("train/2018/9/a.png"), 1024, 1024, |x, y| image(y, x));
    rgb(&raw.join("train/mask_merge/2017_2018/9/a.png"), 1024, 1024, |x, y| [((x + y) % 10) as u8, (x % 10) as u8, (y % 3) as u8]);
    let report = ok(&["prepare", "hiucd", s(&raw), "--out", s(&out)]);
    assert!(report.contains("train  1 pair → 4 written"), "{report}");

    // Tile k is at (row k / 2, column k % 2): tile 1 starts at x = 512, y = 0.
    let tile = image::open(out.join("train/2017_512/1_a.png")).unwrap().into_rgb8();
    assert_eq!(tile.dimensions(), (512, 512));
    assert_eq!(tile.get_pixel(3, 5).0, image(512 + 3, 5));
    let mask = image::open(out.join("train/mask_512/2_a.png")).unwrap().into_rgb8();
    let (x, y) = (7, 512 + 4); // source coordinates of mask tile 2 pixel (7, 4)
    let raw_px = [((x + y) % 10) as u8, (x % 10) as u8, (y % 3) as u8];
    let remap = |v: u8, unlabeled: u8| if v == 0 { unlabeled } else { v - 1 };
    assert_eq!(mask.get_pixel(7, 4).0, [remap(raw_px[0], 9), remap(raw_px[1], 9), remap(raw_px[2], 255)]);

    let list = std::fs::read_to_string(out.join("train.txt")).unwrap();
    assert_eq!(list.lines().count(), 4);
    let fields: Vec<&str> = list.lines().next().unwrap().split(' ').collect();
    assert_eq!(fields.len(), 5);
    assert!(fields[0].ends_with("2017_512/0_a.png") && fields[2] == fields[3] && fields[3] == fields[4]);

    // The prepared folder is a hiucd: dataset whose labels decode as ClearSCD's loader does.
    let spec: DatasetSpec = format!("hiucd:{}", out.display()).parse().unwrap();
    let dataset = Dataset::open(&spec, "train", true, None).unwrap();
    assert_eq!(dataset.len(), 4);
    let sample = load_pair(&dataset, 2).unwrap();
    let [a, b] = sample.semantic.as_ref().unwrap();
    let i = (4 * 512 + 7) as usize;
    assert_eq!((a.data[i], b.data[i], sample.label.as_ref().unwrap().data[i]), (mask.get_pixel(7, 4)[0], mask.get_pixel(7, 4)[1], mask.get_pixel(7, 4)[2]));

    // A raw code outside Hi-UCD's is named with its file.
    rgb(&raw.join("train/mask_merge/2017_2018/9/a.png"), 1024, 1024, |_, _| [11, 1, 1]);
    let err = fails(&["prepare", "hiucd", s(&raw), "--out", s(&tmp.path().join("again"))]);
    assert!(err.contains("mask_merge/2017_2018/9/a.png") && err.contains("[11, 1, 1]"), "{err}");
}

#[test]
fn second_palettes_become_index_maps() {
    let tmp = tempfile::tempdir().unwrap();
    let (raw, out) = (tmp.path().join("SECOND"), tmp.path().join("prepared"));
    let palette = changedet_data::palette::SECOND;
    // Left half: water → building (changed); right half white in both (no change).
    rgb(&raw.join("test/label1/p.png"), 4, 2, |x, _| if x < 2 { palette[0] } else { [255; 3] });
    rgb(&raw.join("test/label2/p.png"), 4, 2, |x, _| if x < 2 { palette[4] } else { [255; 3] });
    ok(&["prepare", "second", s(&raw), "--out", s(&out)]);
    let gray = |dir: &str| image::open(out.join("test").join(dir).join("p.png")).unwrap().into_luma8().into_raw();
    assert_eq!(gray("A"), [0, 0, 6, 6, 0, 0, 6, 6]);
    assert_eq!(gray("B"), [4, 4, 6, 6, 4, 4, 6, 6]);
    assert_eq!(gray("change"), [1, 1, 0, 0, 1, 1, 0, 0]);
}
