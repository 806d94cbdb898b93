//! The decision threshold (#28, item 11): `--threshold` on `predict`, `eval` and `metrics`;
//! `eval --choose-threshold` keeps the best-F1 threshold of a validation split in a copy of the
//! checkpoint, which `predict`, `eval` and `info` then use and show; test splits are refused.

mod common;

use std::path::Path;

use common::*;

fn egy() -> String {
    format!("generic:{}", shared_data("egy-bcd-256").display())
}

/// `eval --json`'s F1 and the threshold it reports.
fn eval(extra: &[&str], json: &Path) -> (f64, f64) {
    let dataset = egy();
    let mut args = vec!["eval", "--dataset", &dataset, "--split", "val", "--json", s(json), "--overwrite", "--device", "cpu"];
    args.extend_from_slice(extra);
    ok(&args);
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    (report["metrics"]["f1"].as_f64().unwrap(), report["threshold"].as_f64().unwrap())
}

#[test]
fn a_threshold_chosen_on_validation_is_carried_by_the_checkpoint_and_used() {
    let tmp = tempfile::tempdir().unwrap();
    let (json, chosen) = (tmp.path().join("eval.json"), tmp.path().join("chosen.safetensors"));
    let (f1_at_half, half) = eval(&["--threshold", "0.5"], &json);
    assert_eq!(half, 0.5);

    let refused = fails(&["eval", "--dataset", &egy(), "--split", "test", "--choose-threshold", s(&chosen), "--device", "cpu"]);
    assert!(refused.contains("split 'test' looks like a test split"), "{refused}");
    assert!(!chosen.exists(), "nothing is written when refused");

    let said = ok(&["eval", "--dataset", &egy(), "--split", "val", "--choose-threshold", s(&chosen), "--device", "cpu"]);
    assert!(said.contains(&format!("{} carries it", chosen.display())), "{said}");
    let info = ok(&["info", s(&chosen)]);
    let line = info.lines().find(|l| l.starts_with("threshold")).expect("info shows the threshold");
    assert!(line.contains("best F1 on egy-bcd-256/val"), "{line}");
    let threshold: f64 = line.split_whitespace().nth(1).unwrap().trim_end_matches(':').parse().unwrap();

    // The chosen checkpoint evaluates at its own threshold by default, at least as well as the
    // argmax on the split it was chosen on (½ was among the candidates; bins are 1/256 wide,
    // so allow what one bin's pixels at the edge could move).
    let (f1_chosen, used) = eval(&["--checkpoint", s(&chosen)], &json);
    assert_eq!(used, threshold);
    assert!(f1_chosen >= f1_at_half - 1e-3, "F1 {f1_chosen} at {threshold} vs {f1_at_half} at 0.5");
    // --threshold overrides the checkpoint's.
    assert_eq!(eval(&["--checkpoint", s(&chosen), "--threshold", "0.5"], &json), (f1_at_half, 0.5));
}

#[test]
fn predict_cuts_the_change_probability_at_the_threshold_and_scores_the_pair() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shared_data("egy-bcd-256");
    let (before, after, label) = (data.join("A/val_1.png"), data.join("B/val_1.png"), data.join("label/val_1.png"));
    let mut changed = Vec::new();
    for threshold in ["0.05", "0.5", "0.95"] {
        let out = tmp.path().join(threshold);
        let raw = out.join("raw.safetensors");
        let args = ["predict", "--before", s(&before), "--after", s(&after), "--label", s(&label), "--out", s(&out), "--raw", s(&raw), "--threshold", threshold, "--device", "cpu"];
        let said = ok(&args);
        assert!(said.contains(&format!("at threshold {threshold} (given)")), "{said}");
        assert!(said.contains("against the labels: precision"), "predict --label prints the pair's scores: {said}");
        // The mask is exactly "log-odds of change above ln(t / (1 − t))" of the raw logits.
        let bytes = std::fs::read(&raw).unwrap();
        let tensors = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let logits: Vec<f32> = tensors.tensor("logits").unwrap().data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        let plane = logits.len() / 2;
        let t: f64 = threshold.parse().unwrap();
        let expected: Vec<u8> = (0..plane).map(|p| if logits[plane + p] - logits[p] > (t / (1.0 - t)).ln() as f32 { 255 } else { 0 }).collect();
        let mask = changedet_raster::read_gray(&out.join("val_1_change.png")).unwrap();
        assert!(mask.data == expected, "threshold {threshold}: the mask is not the logits' cut");
        changed.push(expected.iter().filter(|&&v| v == 255).count());
    }
    assert!(changed[0] > changed[1] && changed[1] > changed[2], "a lower threshold marks more pixels: {changed:?}");
}

#[test]
fn metrics_scores_probability_maps_at_a_threshold() {
    let tmp = tempfile::tempdir().unwrap();
    let data = shared_data("egy-bcd-256");
    let out = tmp.path().join("maps");
    ok(&["predict", "--dataset", &egy(), "--split", "val", "--out", s(&out), "--threshold", "0.5", "--device", "cpu"]);
    let gt = tmp.path().join("gt");
    std::fs::create_dir_all(&gt).unwrap();
    for i in 1..=3 {
        std::fs::copy(data.join(format!("label/val_{i}.png")), gt.join(format!("val_{i}.png"))).unwrap();
    }
    let scores = |threshold: &str| {
        let json = tmp.path().join(format!("{threshold}.json"));
        ok(&["metrics", "--pred", s(&out), "--gt", s(&gt), "--convention", "binary", "--threshold", threshold, "--json", s(&json)]);
        let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        report["conventions"]["binary"].clone()
    };
    let (low, high) = (scores("0.1"), scores("0.9"));
    assert!(low["recall"].as_f64() > high["recall"].as_f64(), "recall at 0.1 above recall at 0.9: {low} {high}");
    // At ½ the probability maps (× 255, rounded) give the masks' scores but for pixels within
    // half a grey level of ½.
    let (masks_json, half) = (tmp.path().join("masks.json"), scores("0.5"));
    ok(&["metrics", "--pred", s(&out), "--gt", s(&gt), "--convention", "binary", "--json", s(&masks_json)]);
    let masks: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&masks_json).unwrap()).unwrap();
    let (f1_masks, f1_half) = (masks["conventions"]["binary"]["f1"].as_f64().unwrap(), half["f1"].as_f64().unwrap());
    assert!((f1_masks - f1_half).abs() < 5e-3, "F1 {f1_masks} from the masks, {f1_half} from the probabilities at 0.5");
    let refused = fails(&["metrics", "--pred", s(&out), "--gt", s(&gt), "--threshold", "1.5"]);
    assert!(refused.contains("not a threshold"), "{refused}");
}
