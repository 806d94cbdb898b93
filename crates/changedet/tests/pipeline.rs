//! The whole binary-change-detection path on real LEVIR-CD pairs: train, evaluate, predict.

mod common;

use std::path::Path;

use changedet_metrics::BinaryConfusion;
use common::*;

const FOUR: [&str; 4] = ["test_102_0512_0000.png", "test_121_0768_0256.png", "test_2_0000_0000.png", "test_2_0000_0512.png"];
const HELD_OUT: [&str; 7] = [
    "test_55_0256_0000.png",
    "test_77_0512_0256.png",
    "test_7_0256_0512.png",
    "train_36_0512_0512.png",
    "train_386_0512_0768.png",
    "train_412_0512_0768.png",
    "val_27_0000_0256.png",
];

fn eval_json(checkpoint: &Path, dataset: &str, split: &str, json: &Path) -> serde_json::Value {
    ok(&["eval", "--checkpoint", s(checkpoint), "--dataset", dataset, "--split", split, "--json", s(json), "--device", "cpu"]);
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

/// Scores the PNG maps `predict` wrote against the label files, without any changedet code
/// between the files and the counts.
fn confusion_from_pngs(pred_dir: &Path, label_dir: &Path, names: &[&str]) -> BinaryConfusion {
    let mut c = BinaryConfusion::default();
    for name in names {
        let stem = name.trim_end_matches(".png");
        let pred = image::open(pred_dir.join(format!("{stem}_change.png"))).unwrap().into_luma8();
        let label = image::open(label_dir.join(name)).unwrap().into_luma8();
        assert_eq!(pred.dimensions(), label.dimensions());
        for (p, g) in pred.pixels().zip(label.pixels()) {
            assert!(p[0] == 0 || p[0] == 255, "change maps are 0/255");
            match (p[0] == 255, g[0] == 255) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, true) => c.fn_ += 1,
                (false, false) => c.tn += 1,
            }
        }
    }
    c
}

#[test]
fn fc_siam_diff_overfits_four_real_pairs_and_eval_agrees_with_predicted_maps() {
    let levir = levir_256();
    let dataset = format!("levir-cd:{}", levir.display());
    let tmp = tempfile::tempdir().unwrap();
    let four = write_list(&tmp.path().join("four.txt"), &FOUR);
    let held_out = write_list(&tmp.path().join("held_out.txt"), &HELD_OUT);
    let run = tmp.path().join("run");

    ok(&[
        "train", "--dataset", &dataset, "--train-split", &four, "--val-split", &four, "--out", s(&run),
        "--epochs", "80", "--batch-size", "4", "--crop", "0", "--no-augment", "--lr", "2e-3",
        "--optimizer", "adamw", "--schedule", "constant", "--loss", "ce",
        "--model-config", r#"{"dropout":0.0}"#, "--seed", "1", "--device", "cpu",
    ]);
    for file in ["best.safetensors", "last.safetensors", "metrics.jsonl", "curves.png"] {
        assert!(run.join(file).is_file(), "{file} missing");
    }
    let best = run.join("best.safetensors");

    // Overfitting: the best checkpoint, evaluated afresh, scores F1 ≥ 0.90 on its training pairs.
    let trained = eval_json(&best, &dataset, &four, &tmp.path().join("four.json"));
    let f1 = trained["metrics"]["f1"].as_f64().unwrap();
    assert!(f1 >= 0.90, "F1 on the training pairs is {f1}");

    // On held-out pairs, eval's numbers equal those recomputed from predict's PNG maps.
    let report = eval_json(&best, &dataset, &held_out, &tmp.path().join("held_out.json"));
    let maps = tmp.path().join("maps");
    ok(&["predict", "--checkpoint", s(&best), "--dataset", &dataset, "--split", &held_out, "--out", s(&maps), "--device", "cpu"]);
    let confusion = confusion_from_pngs(&maps, &levir.join("label"), &HELD_OUT);
    let reported: BinaryConfusion = serde_json::from_value(report["metrics"]["confusion"].clone()).unwrap();
    assert_eq!(reported, confusion);
    // `metrics` reads predict's folder as it is (NAME_change.png beside the other maps).
    let labels = tmp.path().join("labels");
    std::fs::create_dir_all(&labels).unwrap();
    for name in HELD_OUT {
        std::fs::copy(levir.join("label").join(name), labels.join(name)).unwrap();
    }
    let scored = tmp.path().join("scored.json");
    ok(&["metrics", "--pred", s(&maps), "--gt", s(&labels), "--json", s(&scored)]);
    let scored: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&scored).unwrap()).unwrap();
    let from_metrics: BinaryConfusion = serde_json::from_value(scored["conventions"]["binary"]["confusion"].clone()).unwrap();
    assert_eq!(from_metrics, confusion);
    let m = confusion.metrics();
    for (name, value) in m.rows() {
        let printed = report["metrics"][name].as_f64().unwrap();
        assert!((printed - value).abs() < 1e-12, "{name}: eval says {printed}, the PNGs give {value}");
    }
    for name in HELD_OUT {
        let stem = name.trim_end_matches(".png");
        for kind in ["probability", "overlay"] {
            assert!(maps.join(format!("{stem}_{kind}.png")).is_file());
        }
    }

    let info = ok(&["info", s(&best)]);
    assert!(info.contains("fc-siam-diff") && info.contains("1350146") && info.contains("best val F1"), "{info}");
}

#[test]
fn resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one() {
    let dataset = format!("levir-cd:{}", levir_256().display());
    let tmp = tempfile::tempdir().unwrap();
    let four = write_list(&tmp.path().join("four.txt"), &FOUR);
    let train = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "train", "--dataset", &dataset, "--train-split", &four, "--val-split", &four, "--out", s(out),
            "--epochs", "2", "--batch-size", "2", "--crop", "64", "--checkpoint-every", "1", "--seed", "5", "--device", "cpu",
        ];
        args.extend_from_slice(extra);
        ok(&args);
    };
    let (whole, interrupted) = (tmp.path().join("whole"), tmp.path().join("interrupted"));
    train(&whole, &[]);
    // 2 steps per epoch: stop inside the second epoch, after the step-3 checkpoint.
    train(&interrupted, &["--max-steps", "3"]);
    let state = |dir: &Path| {
        changedet_models::Checkpoint::read(&dir.join("last.safetensors")).unwrap().training.unwrap()
    };
    assert_eq!(state(&interrupted)["step"], 3);
    train(&interrupted, &["--resume"]);
    assert_eq!(state(&interrupted)["step"], 4);
    assert_eq!(state(&interrupted)["epoch"], 2);

    let a = changedet_models::Checkpoint::read(&whole.join("last.safetensors")).unwrap();
    let b = changedet_models::Checkpoint::read(&interrupted.join("last.safetensors")).unwrap();
    assert_eq!(a.model.keys().collect::<Vec<_>>(), b.model.keys().collect::<Vec<_>>());
    for (key, ta) in &a.model {
        assert!(ta.equal(&b.model[key]), "{key} differs after resuming");
    }
    for (key, ta) in &a.optimizer {
        assert!(ta.equal(&b.optimizer[key]), "optimizer state {key} differs after resuming");
    }
    let log = std::fs::read_to_string(interrupted.join("metrics.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 2, "one log line per epoch, none repeated");
}

#[test]
fn iteration_budget_validates_every_n_steps_keeps_the_best_miou_and_resumes() {
    let dataset = format!("levir-cd:{}", levir_256().display());
    let tmp = tempfile::tempdir().unwrap();
    let four = write_list(&tmp.path().join("four.txt"), &FOUR);
    let train = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "train", "--dataset", &dataset, "--train-split", &four, "--val-split", &four, "--out", s(out), "--iterations", "5",
            "--val-every", "2", "--best-by", "miou", "--batch-size", "2", "--crop", "64", "--seed", "5", "--device", "cpu",
        ];
        args.extend_from_slice(extra);
        ok(&args);
    };
    let (whole, interrupted) = (tmp.path().join("whole"), tmp.path().join("interrupted"));
    train(&whole, &[]);
    let log = |dir: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    // 2 steps per epoch, 5 steps in all: validations at steps 2, 4 and the last.
    let entries = log(&whole);
    assert_eq!(entries.iter().map(|e| e["step"].as_u64().unwrap()).collect::<Vec<_>>(), [2, 4, 5]);
    assert_eq!(entries.iter().map(|e| e["epoch"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
    // The best of the validations that mark some but not most pixels changed.
    let candidate = |e: &&serde_json::Value| {
        let c = &e["val"]["confusion"];
        let n = |k: &str| c[k].as_u64().unwrap();
        let marked = n("tp") + n("fp");
        marked > 0 && 2 * marked <= n("tp") + n("fp") + n("fn") + n("tn")
    };
    let best_miou = entries.iter().filter(candidate).map(|e| e["val"]["miou"].as_f64().unwrap()).fold(f64::MIN, f64::max);
    let best = changedet_models::Checkpoint::read(&whole.join("best.safetensors")).unwrap().training.unwrap();
    assert_eq!(best["best_score"].as_f64().unwrap(), best_miou);

    // Interrupted after the step-4 validation (which saved `last`), resumed to the end: same result.
    train(&interrupted, &["--max-steps", "4"]);
    train(&interrupted, &["--resume"]);
    assert_eq!(log(&interrupted).iter().map(|e| e["step"].as_u64().unwrap()).collect::<Vec<_>>(), [2, 4, 5]);
    let a = changedet_models::Checkpoint::read(&whole.join("last.safetensors")).unwrap();
    let b = changedet_models::Checkpoint::read(&interrupted.join("last.safetensors")).unwrap();
    for (key, ta) in &a.model {
        assert!(ta.equal(&b.model[key]), "{key} differs after resuming");
    }
}

#[test]
fn predict_raw_outputs_equal_the_model_called_directly() {
    use changedet_models::{Checkpoint, LoadedModel, ModelSpec, tensor_io};
    use tch::{Device, Kind, Tensor};

    let tmp = tempfile::tempdir().unwrap();
    let checkpoint = tmp.path().join("model.safetensors");
    tch::manual_seed(3);
    let model = LoadedModel::new(ModelSpec::new("fc-siam-diff", None).unwrap(), Device::Cpu).unwrap();
    Checkpoint::write(&checkpoint, &model, &[], None).unwrap();

    let pair = shared_data("levir-cd-1024");
    let (before, after) = (pair.join("A/test_3.png"), pair.join("B/test_3.png"));
    let raw = tmp.path().join("raw.safetensors");
    let out = tmp.path().join("maps");
    ok(&["predict", "--checkpoint", s(&checkpoint), "--before", s(&before), "--after", s(&after), "--out", s(&out), "--raw", s(&raw), "--device", "cpu"]);

    // The same pair through the model, with the image read and laid out here.
    let norm = model.spec.normalization();
    let input = |path: &Path| {
        let img = image::open(path).unwrap().into_rgb8();
        let (w, h) = img.dimensions();
        let mut chw: Vec<f32> = (0..3).flat_map(|c| img.pixels().map(move |p| p[c] as f32).collect::<Vec<_>>()).collect();
        norm.normalise_planar(&mut chw, 3, None);
        Tensor::from_slice(&chw).view([1, 3, h as i64, w as i64])
    };
    let expected = tch::no_grad(|| model.model.forward_t(&input(&before), &input(&after), false)).logits;
    let written = &tensor_io::read(&raw).unwrap().tensors["logits"];
    assert_eq!(written.size(), [1, 2, 1024, 1024]);
    let max_diff = (written - &expected).abs().max().double_value(&[]);
    assert!(max_diff <= 1e-5, "raw logits differ from the model's by {max_diff}");

    let change = image::open(out.join("test_3_change.png")).unwrap().into_luma8();
    let argmax = Vec::<i64>::try_from(written.argmax(1, false).flatten(0, -1).to_kind(Kind::Int64)).unwrap();
    let flips = change.pixels().zip(&argmax).filter(|(p, a)| (p[0] == 255) != (**a == 1)).count();
    assert_eq!(flips, 0, "the change map is the argmax of the raw logits");
}

#[test]
fn several_datasets_train_together_on_patches_and_a_checkpoint_fine_tunes() {
    let tmp = tempfile::tempdir().unwrap();
    let levir = format!("levir-cd:{}", levir_256().display());
    let dsifn = format!("dsifn-cd:{}", shared_data("dsifn-cd-256").display());
    let four = write_list(&tmp.path().join("four.txt"), &FOUR);
    let two = write_list(&tmp.path().join("two.txt"), &["8_3.png", "9_3.png"]);
    let run = tmp.path().join("run");
    let log = ok(&[
        "train", "--dataset", &levir, "--train-split", &four, "--val-split", &four, "--dataset", &dsifn, "--train-split", &two,
        "--val-split", &two, "--patches", "128:128", "--epochs", "1", "--batch-size", "8", "--loss", "bce-dice", "--out", s(&run), "--device", "cpu",
    ]);
    // 6 pairs of 256² in 128² patches: 24 patches, 3 steps of 8.
    assert!(log.contains("trained 1 epoch (3 steps)"), "{log}");
    let info = ok(&["info", s(&run.join("best.safetensors"))]);
    let sources: Vec<&str> = info.lines().filter(|l| l.starts_with("data")).collect();
    assert_eq!(sources.len(), 2, "{info}");
    assert!(sources[0].contains("levir-cd:") && sources[1].contains("dsifn-cd:"), "{info}");
    assert!(info.contains(r#""patch_grid":{"side":128,"stride":128}"#), "{info}");

    // Fine-tuning starts from the checkpoint's weights, configuration and recipe (its BCE +
    // Dice loss and patches, not the model's reference recipe), options given replacing it.
    let tuned = tmp.path().join("tuned");
    let base = run.join("last.safetensors");
    ok(&["train", "--from", s(&base), "--dataset", &dsifn, "--train-split", &two, "--val-split", &two, "--epochs", "1", "--lr", "0", "--out", s(&tuned), "--device", "cpu"]);
    let (a, b) = (changedet_models::Checkpoint::read(&base).unwrap(), changedet_models::Checkpoint::read(&tuned.join("last.safetensors")).unwrap());
    assert_eq!(a.spec, b.spec);
    let recipe = |c: &changedet_models::Checkpoint| c.training.as_ref().unwrap()["recipe"].clone();
    assert_eq!(recipe(&b)["loss"], recipe(&a)["loss"], "the checkpoint's loss");
    assert_eq!(recipe(&b)["patch_grid"], recipe(&a)["patch_grid"]);
    assert_eq!((recipe(&b)["lr"].as_f64(), recipe(&a)["lr"].as_f64()), (Some(0.0), Some(1e-3)), "--lr replaces the checkpoint's");
    // At learning rate 0 only BatchNorm's running statistics move.
    for (key, ta) in a.model.iter().filter(|(k, _)| k.ends_with("weight") || k.ends_with("bias")) {
        assert!(ta.equal(&b.model[key]), "{key} changed at learning rate 0");
    }
}

/// `bench` runs every FC model's reference recipe (its class-weighted loss included) and times
/// inference as `predict` runs it.
#[test]
fn bench_times_a_training_step_and_inference() {
    for model in ["fc-ef", "fc-siam-diff"] {
        let out = ok(&["bench", "--model", model, "--config", r#"{"width": 4}"#, "--size", "32", "--batch-size", "2", "--iters", "1", "--device", "cpu"]);
        assert!(out.contains("inference") && out.contains("training step"), "{out}");
    }
}

/// `predict --precision bf16` (autocast on the CPU) draws the default model's change map of a
/// LEVIR-CD pair as fp32 does, up to the pixels whose two scores bf16 cannot tell apart (measured:
/// 99.99 % of the pixels agree, IoU of the changed pixels 0.997).
#[test]
fn bf16_prediction_matches_fp32() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/levir-cd");
    let (before, after) = (root.join("A/test_2.png"), root.join("B/test_2.png"));
    let dir = tempfile::tempdir().unwrap();
    let read = |out: &Path, map: &str| image::open(out.join(format!("test_2_{map}.png"))).unwrap().into_luma8().into_raw();
    let (maps, probabilities): (Vec<Vec<u8>>, Vec<Vec<u8>>) = ["fp32", "bf16"]
        .iter()
        .map(|precision| {
            let out = dir.path().join(precision);
            ok(&["predict", "--before", s(&before), "--after", s(&after), "--out", s(&out), "--precision", precision, "--device", "cpu"]);
            (read(&out, "change"), read(&out, "probability"))
        })
        .unzip();
    assert_ne!(probabilities[0], probabilities[1], "bf16 computed nothing differently: was autocast on?");
    let agree = maps[0].iter().zip(&maps[1]).filter(|(a, b)| a == b).count() as f64 / maps[0].len() as f64;
    assert!(agree > 0.999, "{agree}");
    assert!(maps[0].contains(&255), "the pair has changes to agree on");
}

/// `bench --scene` runs the scene and the model alone in rounds and reports every round's
/// ratio and their median.
#[test]
fn bench_scene_reports_the_median_of_its_rounds() {
    let d = shared_data("levir-cd-1024");
    let pair = format!("{},{}", s(&d.join("A/test_1.png")), s(&d.join("B/test_1.png")));
    let out = ok(&["bench", "--model", "fc-siam-diff", "--config", r#"{"width": 4}"#, "--scene", "512", "--scene-from", &pair, "--tile", "256", "--rounds", "3", "--device", "cpu"]);
    let line = out.lines().find(|l| l.starts_with("pipeline / model")).unwrap_or_else(|| panic!("no ratio line in {out}"));
    let (median, rounds) = line.split_once(" (median; rounds in order: ").unwrap_or_else(|| panic!("{line}"));
    let median: f64 = median.rsplit(' ').next().unwrap().parse().unwrap();
    let mut rounds: Vec<f64> = rounds.trim_end_matches(')').split(", ").map(|r| r.parse().unwrap()).collect();
    assert_eq!(rounds.len(), 3, "{line}");
    assert!(rounds.iter().all(|r| *r > 0.0 && r.is_finite()), "{line}");
    rounds.sort_by(f64::total_cmp);
    assert_eq!(median, rounds[1], "{line}");
    assert!(out.contains("run              512×512 px, 9 tiles"), "{out}");
}

/// `bench --profile N` adds libtorch's operator profile of one inference and one training step,
/// N operators each, convolutions among them.
#[test]
fn bench_profiles_inference_and_the_training_step() {
    let out = ok(&["bench", "--model", "fc-siam-diff", "--config", r#"{"width": 4}"#, "--size", "32", "--batch-size", "2", "--iters", "1", "--device", "cpu", "--profile", "3"]);
    let profile = out.split_once("profile of one inference").unwrap_or_else(|| panic!("no profile in {out}")).1;
    let (inference, training) = profile.split_once("profile of one training step").unwrap_or_else(|| panic!("no training profile in {out}"));
    for table in [inference, training] {
        assert_eq!(table.lines().filter(|l| l.trim_start().starts_with("aten::")).count(), 3, "{table}");
        assert!(table.contains("conv") && table.contains("other operators") && table.contains("whole run"), "{table}");
    }
}

/// `--resume` needs no model or data options (the run recorded its datasets and splits; fc-ef
/// is not the default model), and `--epochs`
/// beyond a finished run's extends it; fewer is refused.
#[test]
fn a_finished_run_resumes_on_its_own_data_and_extends() {
    let tmp = tempfile::tempdir().unwrap();
    let levir = format!("levir-cd:{}", levir_256().display());
    let list = write_list(&tmp.path().join("two.txt"), &FOUR[..2]);
    let run = tmp.path().join("run");
    let common = ["--model", "fc-ef", "--model-config", r#"{"width": 4}"#, "--crop", "64", "--batch-size", "2", "--device", "cpu"];
    let first = ok(&[&["train", "--dataset", &levir, "--train-split", &list, "--val-split", &list, "--epochs", "1", "--out", s(&run)], &common[..]].concat());
    assert!(first.contains("trained 1 epoch "), "{first}");
    let extended = ok(&["train", "--out", s(&run), "--resume", "--epochs", "2", "--device", "cpu"]);
    assert!(extended.contains("trained 2 epochs"), "{extended}");
    let err = fails(&["train", "--out", s(&run), "--resume", "--epochs", "1", "--device", "cpu"]);
    assert!(err.contains("fewer than the run's 2"), "{err}");
}
