//! ClearSCD's `test.py` run on three cases (../shared/golden/clearscd/metrics.json) is reproduced:
//! unrounded values to 1e-9 relative, the printed table and the confusion matrices exactly. The one
//! place changedet departs on purpose is the reference's 0/0 NaN, which it returns as 0.

use std::path::PathBuf;

use changedet_metrics::{ClearScdAccumulator, ScdMaps};
use serde_json::Value;

const CLASSES: usize = 9;
const IMAGES: usize = 20;
const PIXELS: usize = 64 * 64;

fn golden() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/golden/clearscd")
}

fn value(v: &Value) -> f64 {
    match v {
        Value::String(s) if s == "NaN" => f64::NAN,
        other => other.as_f64().unwrap_or_else(|| panic!("not a number: {other}")),
    }
}

fn close(ours: f64, theirs: f64) -> bool {
    (ours - theirs).abs() <= 1e-9 * theirs.abs().max(1e-300)
}

#[test]
fn reproduces_the_reference_test_py() {
    let bytes = std::fs::read(golden().join("metrics_inputs.safetensors")).unwrap();
    let inputs = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(golden().join("metrics.json")).unwrap()).unwrap();

    for case in ["case0", "case1", "case2"] {
        let map = |name: &str| inputs.tensor(&format!("{case}.{name}")).unwrap().data().to_vec();
        let (gt_a, gt_b, gt_bcd) = (map("gt_A"), map("gt_B"), map("gt_BCD"));
        let (pred_a, pred_b, pred_c) = (map("pred_A"), map("pred_B"), map("pred_change"));
        assert_eq!(gt_a.len(), IMAGES * PIXELS);

        // Images in the reference's order, but accumulated in two separately merged halves.
        let mut first = ClearScdAccumulator::new(CLASSES);
        let mut second = ClearScdAccumulator::new(CLASSES);
        for i in 0..IMAGES {
            let r = i * PIXELS..(i + 1) * PIXELS;
            let maps = ScdMaps {
                gt_a: &gt_a[r.clone()],
                gt_b: &gt_b[r.clone()],
                gt_change: &gt_bcd[r.clone()],
                pred_a: &pred_a[r.clone()],
                pred_b: &pred_b[r.clone()],
                pred_change: &pred_c[r],
            };
            if i < 7 { &mut first } else { &mut second }.add(&maps).unwrap();
        }
        first.merge(&second);
        let m = first.metrics();
        let exp = &expected["cases"][case];

        let unrounded = &exp["unrounded"];
        let ours = [
            ("OA_scd", m.oa_scd),
            ("kappa_trad", m.kappa_trad),
            ("kappa_nuc", m.kappa_nuc),
            ("IoU_mean", m.iou_mean),
            ("IoU_change", m.iou_change),
            ("IoU_nochange", m.iou_nochange),
            ("F1_change", m.f1_change),
            ("Sek", m.sek),
            ("IoU_change_mod", m.iou_change_mod),
            ("F1_change_mod", m.f1_change_mod),
            ("Sek_mod", m.sek_mod),
            ("seg_pair_IoU", m.seg_pair_iou),
            ("seg_pair_F1", m.seg_pair_f1),
            ("binary_consistency", m.binary_consistency),
            ("change_consistency", m.change_consistency),
            ("nochange_consistency", m.nochange_consistency),
            ("invalid_area_sum", m.invalid_area_sum as f64),
            ("right_BCD_area_sum", m.right_bcd_area_sum as f64),
        ];
        for (name, value_ours) in ours {
            let theirs = value(&unrounded[name]);
            if theirs.is_nan() {
                // The reference's 0/0: SEG mF1 with classes that never occur.
                assert_eq!(name, "seg_pair_F1", "{case}: unexpected NaN in {name}");
                assert!(m.guarded.iter().any(|g| g.starts_with("seg_f1[")), "{case}: the guard is reported");
                assert!(value_ours.is_finite());
            } else {
                assert!(close(value_ours, theirs), "{case} {name}: ours {value_ours}, reference {theirs}");
            }
        }
        for (name, printed) in &m.printed {
            let theirs = value(&exp["printed_res_dict"][name]);
            if theirs.is_nan() {
                assert_eq!(name, "SEG_mF1");
            } else {
                assert_eq!(*printed, theirs, "{case} printed {name}");
            }
        }
        assert_eq!(m.distinct_change_codes as u64, exp["n_distinct_gt_codes_change_consist"].as_u64().unwrap(), "{case}");
        assert_eq!(m.distinct_nochange_codes as u64, exp["n_distinct_gt_codes_nochange_consist"].as_u64().unwrap(), "{case}");
        let bcd: Vec<u64> = exp["confusion_bcd_after_mod"].as_array().unwrap().iter().flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as u64)).collect();
        assert_eq!(m.bcd_confusion_mod.counts, bcd, "{case}");
        let seg: Vec<u64> = exp["confusion_seg_pair_9x9"].as_array().unwrap().iter().flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as u64)).collect();
        assert_eq!(m.seg_pair_confusion.counts, seg, "{case}");
    }
}
