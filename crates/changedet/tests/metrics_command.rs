//! `changedet metrics` scores maps on disk: the ClearSCD golden cases written out as PNG folders
//! give the reference's printed table; binary and SECOND-palette inputs; mismatched folders fail.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn golden(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/golden/clearscd").join(rel)
}

fn png(path: &Path, w: u32, h: u32, data: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    changedet_raster::write_gray_png(path, w, h, data).unwrap();
}

#[test]
fn clearscd_golden_cases_through_the_command() {
    let bytes = std::fs::read(golden("metrics_inputs.safetensors")).unwrap();
    let inputs = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let expected: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(golden("metrics.json")).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    const PIXELS: usize = 64 * 64;
    for case in ["case1", "case2"] {
        let (pred, gt) = (tmp.path().join(case).join("pred"), tmp.path().join(case).join("gt"));
        for (tensor, dir) in [
            ("gt_A", gt.join("A")),
            ("gt_B", gt.join("B")),
            ("gt_BCD", gt.join("change")),
            ("pred_A", pred.join("A")),
            ("pred_B", pred.join("B")),
            ("pred_change", pred.join("change")),
        ] {
            let data = inputs.tensor(&format!("{case}.{tensor}")).unwrap().data().to_vec();
            for i in 0..20 {
                png(&dir.join(format!("img_{i:02}.png")), 64, 64, &data[i * PIXELS..(i + 1) * PIXELS]);
            }
        }
        let json = tmp.path().join(format!("{case}.json"));
        let out = ok(&["metrics", "--pred", s(&pred), "--gt", s(&gt), "--convention", "all", "--json", s(&json)]);
        assert!(out.contains("clearscd (ClearSCD test.py") && out.contains("second (Bi-SRNet"), "{out}");
        let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let printed = report["conventions"]["clearscd"]["printed"].as_array().unwrap();
        for row in printed {
            let (name, ours) = (row[0].as_str().unwrap(), row[1].as_f64().unwrap());
            match &expected["cases"][case]["printed_res_dict"][name] {
                serde_json::Value::String(nan) if nan == "NaN" => assert_eq!(name, "SEG_mF1"),
                theirs => assert_eq!(ours, theirs.as_f64().unwrap(), "{case} {name}"),
            }
        }
        for convention in ["binary", "second", "fromto"] {
            assert!(report["conventions"][convention].is_object(), "{convention} missing");
        }
    }
}

#[test]
fn binary_maps_plots_and_mismatched_folders() {
    let levir = levir_256().join("label");
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("m.json");
    let plots = tmp.path().join("plots");
    ok(&["metrics", "--pred", s(&levir), "--gt", s(&levir), "--convention", "binary", "--json", s(&json), "--plot", s(&plots)]);
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["conventions"]["binary"]["f1"], 1.0);
    assert_eq!(report["pairs"], 11);
    assert!(plots.join("confusion.png").is_file() && plots.join("iou.png").is_file());

    // 0/1 predictions against 0/255 labels: the same maps, differently encoded.
    let pred = tmp.path().join("pred");
    for entry in std::fs::read_dir(&levir).unwrap() {
        let path = entry.unwrap().path();
        let label = changedet_raster::read_gray(&path).unwrap();
        let ones: Vec<u8> = label.data.iter().map(|&v| u8::from(v == 255)).collect();
        png(&pred.join(path.file_name().unwrap()), label.width, label.height, &ones);
    }
    let out = ok(&["metrics", "--pred", s(&pred), "--gt", s(&levir), "--convention", "binary"]);
    assert!(out.contains("f1                         1.0000"), "{out}");

    let one = pred.join("val_27_0000_0256.png");
    let kept = std::fs::read(&one).unwrap();
    std::fs::remove_file(&one).unwrap();
    let err = fails(&["metrics", "--pred", s(&pred), "--gt", s(&levir), "--convention", "binary"]);
    assert!(err.contains("no prediction") && err.contains("val_27_0000_0256"), "{err}");
    png(&one, 10, 10, &[0; 100]);
    let err = fails(&["metrics", "--pred", s(&pred), "--gt", s(&levir), "--convention", "binary"]);
    assert!(err.contains("val_27_0000_0256.png is 10×10") && err.contains("256×256"), "{err}");
    std::fs::write(&one, kept).unwrap();
    png(&pred.join("extra.png"), 10, 10, &[0; 100]);
    let err = fails(&["metrics", "--pred", s(&pred), "--gt", s(&levir), "--convention", "binary"]);
    assert!(err.contains("'extra' has no ground-truth"), "{err}");
}

#[test]
fn second_palette_labels() {
    // A synthetic 2×2 SECOND-style pair: white = no change, palette colours inside changes.
    let tmp = tempfile::tempdir().unwrap();
    let (white, water, building, tree) = ([255u8, 255, 255], [0, 0, 255], [128, 0, 0], [0, 255, 0]);
    let rgb = |path: &Path, px: [[u8; 3]; 4]| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        changedet_raster::write_rgb_png(path, 2, 2, &px.concat()).unwrap();
    };
    let gt = tmp.path().join("gt");
    rgb(&gt.join("A/p.png"), [white, water, water, white]);
    rgb(&gt.join("B/p.png"), [white, building, tree, white]);
    let pred = tmp.path().join("pred");
    // Classes: water 0, building 4, tree 3; changes predicted at pixels 1 and 3.
    png(&pred.join("A/p.png"), 2, 2, &[0, 0, 0, 0]);
    png(&pred.join("B/p.png"), 2, 2, &[0, 4, 0, 3]);
    png(&pred.join("change/p.png"), 2, 2, &[0, 255, 0, 255]);
    let json = tmp.path().join("m.json");
    ok(&["metrics", "--pred", s(&pred), "--gt", s(&gt), "--gt-encoding", "second", "--convention", "second", "--json", s(&json)]);
    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let second = &r["conventions"]["second"];
    // Both dates: GT [0, w+1, w+1, 0] / [0, b+1, t+1, 0]; prediction [0, w+1, 0, w+1] / [0, b+1, 0, t+1].
    // Over both dates: TP 2 (pixel 1), FN 2 (pixel 2), FP 2 (pixel 3), TN 2 (pixel 0), so both
    // IoUs are 2/6; the class is right wherever the change is (Fscd = 1/2).
    assert_eq!(second["iou_changed"], 1.0 / 3.0);
    assert_eq!(second["iou_unchanged"], 1.0 / 3.0);
    assert_eq!(second["fscd"], 0.5);
    rgb(&gt.join("A/p.png"), [white, [1, 2, 3], water, white]);
    let err = fails(&["metrics", "--pred", s(&pred), "--gt", s(&gt), "--gt-encoding", "second"]);
    assert!(err.contains("A/p.png") && err.contains("[1, 2, 3]") && err.contains("SECOND palette"), "{err}");
}
