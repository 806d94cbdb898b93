//! ChangeCLIP through the command line: the tiny golden checkpoint (mmseg key names) imported
//! with its sizes read off the shapes, then `predict` on the real LEVIR pair the golden was made
//! from reproduces the reference's logits; class lists come from the command line or from the
//! reference's JSON files.

mod common;

use std::path::{Path, PathBuf};

use changedet_data::class_lists::{ImageClasses, json_path, to_json, DEFAULT_TAG};
use changedet_data::{Dataset, DatasetSpec};
use changedet_models::tensor_io;
use common::{fails, levir_256, ok, s};
use tch::{Kind, Tensor};

const PAIR: &str = "test_7_0256_0512.png";
const CLASSES_A: &str = "mountain,bare land,ground track field,road,farmland,dense residential,island,highway,fertile land";
const CLASSES_B: &str = "ground track field,farmland,bare land,wetland,golf course,island,fertile land,interchange,pond";

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/golden/clip").join(name)
}

/// The golden's text tower has 2 heads of width 16, which shapes cannot tell from CLIP's 64.
fn import(dir: &Path, extra: &str) -> PathBuf {
    let out = dir.join("changeclip-tiny.safetensors");
    let config = format!("{{\"text\": {{\"heads\": 2}}{extra}}}");
    let stdout = ok(&["import", s(&golden("changeclip_tiny.safetensors")), "--model", "changeclip-rn50", "--config", &config, "--out", s(&out)]);
    assert!(stdout.contains("429 variables") && stdout.contains("19 × BatchNorm step counter"), "{stdout}");
    out
}

fn predict_logits(checkpoint: &Path, dir: &Path, extra: &[&str]) -> Tensor {
    let root = levir_256();
    let raw = dir.join("raw.safetensors");
    let (before, after) = (root.join("A").join(PAIR), root.join("B").join(PAIR));
    let mut args = vec!["predict", "--checkpoint", s(checkpoint), "--before", s(&before), "--after", s(&after), "--out", s(dir), "--raw", s(&raw), "--device", "cpu"];
    args.extend_from_slice(extra);
    ok(&args);
    tensor_io::read(&raw).unwrap().tensors.remove("logits").unwrap()
}

fn max_abs_difference(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double)).abs().max().double_value(&[])
}

#[test]
fn imported_golden_predicts_the_reference_logits() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = import(dir.path(), "");
    let golden_logits = tensor_io::read(&golden("changeclip_tiny_io.safetensors")).unwrap().tensors.remove("seg_logits").unwrap();

    // The reference's inference builds both prompts from A's list.
    let logits = predict_logits(&checkpoint, dir.path(), &["--classes-before", CLASSES_A, "--classes-after", CLASSES_B]);
    let error = max_abs_difference(&logits, &golden_logits);
    eprintln!("seg_logits from PNGs through import and predict: max abs error {error:.2e}");
    assert!(error <= 1e-5, "{error}");

    // With the quirk switched off, B's own list changes the answer.
    let dir2 = tempfile::tempdir().unwrap();
    let corrected = import(dir2.path(), ", \"after_prompt_from_before_at_inference\": false");
    let logits_b = predict_logits(&corrected, dir2.path(), &["--classes-before", CLASSES_A, "--classes-after", CLASSES_B]);
    assert!(max_abs_difference(&logits_b, &golden_logits) > 1e-4);

    // Class lists from the reference's JSON files beside a dataset's folders give the same maps.
    let data = dir.path().join("levir");
    for folder in ["A", "B", "label"] {
        std::fs::create_dir_all(data.join(folder)).unwrap();
        std::fs::copy(levir_256().join(folder).join(PAIR), data.join(folder).join(PAIR)).unwrap();
    }
    for (folder, classes) in [("A", CLASSES_A), ("B", CLASSES_B)] {
        let names: Vec<String> = classes.split(',').map(String::from).collect();
        let falling: Vec<f32> = (0..names.len()).map(|i| 0.5 - 0.01 * i as f32).collect();
        let image = std::path::absolute(data.join(folder).join(PAIR)).unwrap();
        let entry = ImageClasses::from_probabilities(image.to_string_lossy().into_owned(), &names, &falling);
        std::fs::write(json_path(&data.join(folder), DEFAULT_TAG), to_json(&[entry])).unwrap();
    }
    let spec: DatasetSpec = format!("levir-cd:{}", s(&data)).parse().unwrap();
    let dataset = Dataset::open(&spec, "all", false, None).unwrap();
    assert_eq!(dataset.pairs[0].classes[0].join(","), CLASSES_A);
    assert_eq!(dataset.pairs[0].classes[1].join(","), CLASSES_B);
    let maps = dir.path().join("maps");
    ok(&["predict", "--checkpoint", s(&checkpoint), "--dataset", &format!("levir-cd:{}", s(&data)), "--split", "all", "--out", s(&maps), "--device", "cpu"]);
    let name = PAIR.trim_end_matches(".png");
    let from_json = std::fs::read(maps.join(format!("{name}_change.png"))).unwrap();
    let from_flags = std::fs::read(dir.path().join(format!("{name}_change.png"))).unwrap();
    assert_eq!(from_json, from_flags);
}

#[test]
fn a_checkpoint_that_does_not_fit_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let src = golden("changeclip_tiny.safetensors");
    let out = dir.path().join("x.safetensors");
    let err = fails(&["import", s(&src), "--model", "changeclip-vit", "--out", s(&out)]);
    assert!(err.contains("ResNet") && err.contains("changeclip"), "{err}");
    // A decoder width the checkpoint does not have: the first variable that differs is named.
    let err = fails(&["import", s(&src), "--model", "changeclip-rn50", "--config", "{\"width\": 128}", "--out", s(&out)]);
    assert!(err.contains("key '") && err.contains("has shape"), "{err}");
    assert!(!out.exists());
}

/// ChangeCLIP at the golden's tiny size (full-width FPN, DFC and decoder), as a model config.
const TINY: &str = r#"{"vision": {"kind": "resnet", "layers": [1, 1, 1, 1], "width": 8, "output_dim": 64, "heads": 32, "positional_grid": 16},
 "text": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2, "embed_dim": 64},
 "context_decoder": {"width": 64, "heads": 4, "layers": 3, "visual_dim": 64, "dropout": 0.1}}"#;

#[test]
fn tiny_changeclip_overfits_four_real_pairs() {
    // The top-left 128×128 of four real LEVIR-CD pairs (15–30% changed), to keep the CPU run short.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("levir");
    for folder in ["A", "B", "label"] {
        std::fs::create_dir_all(data.join(folder)).unwrap();
        for name in ["test_121_0768_0256", "test_2_0000_0000", "test_2_0000_0512", "test_7_0256_0512"] {
            let image = image::open(levir_256().join(folder).join(format!("{name}.png"))).unwrap();
            image.crop_imm(0, 0, 128, 128).save(data.join(folder).join(format!("{name}.png"))).unwrap();
        }
    }
    let dataset = format!("levir-cd:{}", s(&data));
    let runs = dir.path().join("runs");
    // The reference recipe (AdamW, decay 0.01 except norms, cross-entropy over all pixels) at a
    // constant rate and without augmentation, which is what memorising four pairs needs.
    ok(&[
        "train", "--model", "changeclip-rn50", "--model-config", TINY, "--dataset", &dataset, "--train-split", "all", "--val-split", "all",
        "--out", s(&runs), "--epochs", "70", "--batch-size", "4", "--lr", "3e-4", "--schedule", "constant", "--no-augment", "--best-by", "f1",
        "--device", "cpu",
    ]);
    let log: Vec<serde_json::Value> = std::fs::read_to_string(runs.join("metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let loss = |i: usize| log[i]["train_loss"].as_f64().unwrap();
    let best = log.iter().map(|e| e["val"]["f1"].as_f64().unwrap()).fold(0.0, f64::max);
    eprintln!("loss {:.4} → {:.4}; best F1 {best:.4}", loss(0), loss(log.len() - 1));
    assert!(loss(log.len() - 1) < 0.5 * loss(0));
    assert!(best >= 0.85, "best F1 {best}");
    let json = dir.path().join("eval.json");
    ok(&["eval", "--checkpoint", s(&runs.join("best.safetensors")), "--dataset", &dataset, "--split", "all", "--json", s(&json), "--device", "cpu"]);
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!((report["metrics"]["f1"].as_f64().unwrap() - best).abs() < 1e-9);
    assert_eq!(report["protocol"], "whole");
    // The sliding-window protocol is reported with the metrics it produced (the report replaced
    // on request: outputs are never replaced silently).
    ok(&["eval", "--checkpoint", s(&runs.join("best.safetensors")), "--dataset", &dataset, "--split", "all", "--protocol", "slide:64:32", "--json", s(&json), "--overwrite", "--device", "cpu"]);
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["protocol"], "slide:64:32");
    assert!(report["metrics"]["f1"].as_f64().unwrap() > 0.5);
}
