//! ClearSCD trained and evaluated from the command line on a synthetic semantic-change dataset
//! in the Hi-UCD layout (generated here: coloured land-cover blocks, some changing class; no
//! real SCD data is available): an interrupted and resumed run ends exactly where an
//! uninterrupted one does (weights, optimiser state and SACL queues), and `eval` reports every
//! convention from the model's own predictions.

mod common;

use std::path::Path;

use changedet_metrics::{ClearScdAccumulator, ScdMaps};
use changedet_models::Checkpoint;
use common::{fails, ok, s};
use rand::{Rng, SeedableRng};
use tch::{Device, Tensor};

const SIZE: u32 = 64;
const BLOCK: u32 = 16;

/// Hi-UCD layout: `split/2017_512/`, `split/2018_512/`, `split/mask_512/` (red = class at date 1,
/// green = class at date 2, blue = change; one unlabeled block per pair: 9 and 255).
fn write_split(root: &Path, split: &str, pairs: usize, rng: &mut impl Rng) {
    let colours = [[200u8, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 60]];
    for dir in ["2017_512", "2018_512", "mask_512"] {
        std::fs::create_dir_all(root.join(split).join(dir)).unwrap();
    }
    let blocks = (SIZE / BLOCK) as usize;
    for i in 0..pairs {
        let before: Vec<u8> = (0..blocks * blocks).map(|_| rng.random_range(0..4)).collect();
        let after: Vec<u8> = before.iter().map(|&c| if rng.random_bool(0.35) { (c + 1) % 4 } else { c }).collect();
        let (mut img_a, mut img_b, mut mask) = (Vec::new(), Vec::new(), Vec::new());
        for y in 0..SIZE {
            for x in 0..SIZE {
                let b = (y / BLOCK) as usize * blocks + (x / BLOCK) as usize;
                let noise = |rng: &mut dyn rand::RngCore| -> [u8; 3] { [0, 1, 2].map(|_| rng.random_range(0..30)) };
                let (na, nb) = (noise(rng), noise(rng));
                img_a.extend((0..3).map(|c| colours[before[b] as usize][c].saturating_add(na[c])));
                img_b.extend((0..3).map(|c| colours[after[b] as usize][c].saturating_add(nb[c])));
                let unlabeled = b == i % (blocks * blocks);
                mask.extend(if unlabeled { [9, 9, 255] } else { [before[b], after[b], u8::from(before[b] != after[b])] });
            }
        }
        let name = format!("{i}_tile.png");
        changedet_raster::write_rgb_png(&root.join(split).join("2017_512").join(&name), SIZE, SIZE, &img_a).unwrap();
        changedet_raster::write_rgb_png(&root.join(split).join("2018_512").join(&name), SIZE, SIZE, &img_b).unwrap();
        changedet_raster::write_rgb_png(&root.join(split).join("mask_512").join(&name), SIZE, SIZE, &mask).unwrap();
    }
}

fn synthetic_hiucd(root: &Path) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(17);
    write_split(root, "train", 4, &mut rng);
    write_split(root, "val", 2, &mut rng);
}

fn train_args<'a>(dataset: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "train", "--model", "clearscd", "--dataset", dataset, "--out", out, "--epochs", "2", "--batch-size", "2", "--crop", "0",
        "--lr", "1e-3", "--checkpoint-every", "1", "--seed", "3", "--device", "cpu",
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn resumed_clearscd_run_equals_the_uninterrupted_one_and_eval_scores_every_convention() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("hiucd");
    synthetic_hiucd(&data);
    let dataset = format!("hiucd:{}", data.display());
    let (whole, split) = (tmp.path().join("whole"), tmp.path().join("split"));
    ok(&train_args(&dataset, s(&whole), &[]));
    // 2 steps per epoch: stop inside the second epoch, after the step-3 checkpoint.
    ok(&train_args(&dataset, s(&split), &["--max-steps", "3"]));
    let interrupted = Checkpoint::read(&split.join("last.safetensors")).unwrap().training.unwrap();
    assert_eq!((interrupted["step"].as_u64(), interrupted["epoch"].as_u64()), (Some(3), Some(1)));
    // A resumed run keeps the checkpoint's recipe: an option that would change it is refused.
    let err = fails(&train_args(&dataset, s(&split), &["--resume", "--schedule", "poly:0.9"]));
    assert!(err.contains("--schedule") && err.contains("own recipe"), "{err}");
    ok(&train_args(&dataset, s(&split), &["--resume"]));

    let (a, b) = (Checkpoint::read(&whole.join("last.safetensors")).unwrap(), Checkpoint::read(&split.join("last.safetensors")).unwrap());
    assert!(a.model.keys().any(|k| k == "queue_A0") && a.model.keys().any(|k| k == "ptr_B3"));
    for (name, t) in &a.model {
        assert!(t.equal(&b.model[name]), "{name} differs after resuming");
    }
    for (name, t) in &a.optimizer {
        assert!(t.equal(&b.optimizer[name]), "optimiser {name} differs after resuming");
    }
    // Validation scores the class maps too (SECOND convention), in the log and the checkpoint.
    let log = std::fs::read_to_string(whole.join("metrics.jsonl")).unwrap();
    for line in log.lines() {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap();
        let sek = entry["val_semantic"]["sek"].as_f64();
        assert!(sek.is_some_and(f64::is_finite) && entry["val_semantic"]["score"].is_number(), "{line}");
    }
    assert!(a.training.as_ref().unwrap()["val_semantic"]["miou"].is_number());
    // Every class with ≥ 64 low-resolution pixels per batch was enqueued at each of the 4 steps.
    let pointer = a.model["ptr_A0"].int64_value(&[0]);
    assert!(pointer > 0 && pointer % 64 == 0, "ptr_A0 = {pointer}");

    // eval: every convention; the ClearSCD table equals one computed here from the model's maps.
    let report = tmp.path().join("eval.json");
    ok(&["eval", "--checkpoint", s(&whole.join("best.safetensors")), "--dataset", &dataset, "--split", "val", "--json", s(&report), "--device", "cpu"]);
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    for convention in ["binary", "second", "fromto", "clearscd"] {
        assert!(json["conventions"][convention].is_object(), "{convention} missing: {json}");
    }
    let model = Checkpoint::read(&whole.join("best.safetensors")).unwrap().load_model(&whole.join("best.safetensors"), Device::Cpu).unwrap();
    let mut expected = ClearScdAccumulator::new(9);
    for i in 0..2 {
        let name = format!("{i}_tile.png");
        let image = |dir: &str| {
            let img = image::open(data.join("val").join(dir).join(&name)).unwrap().into_rgb8();
            let mut chw = vec![0f32; img.len()];
            model.spec.normalization().write_chw(img.as_raw(), &mut chw);
            Tensor::from_slice(&chw).view([1, 3, SIZE as i64, SIZE as i64])
        };
        let out = tch::no_grad(|| model.model.forward_t(&image("2017_512"), &image("2018_512"), false));
        let [sa, sb] = out.semantic.as_ref().unwrap();
        let classes = |t: &Tensor| Vec::<u8>::try_from(t.argmax(1, false).flatten(0, -1).to_kind(tch::Kind::Uint8)).unwrap();
        let change = Vec::<u8>::try_from(out.change_logit().gt(0.0).flatten(0, -1).to_kind(tch::Kind::Uint8)).unwrap();
        let mask = image::open(data.join("val/mask_512").join(&name)).unwrap().into_rgb8();
        let channel = |c: usize| mask.pixels().map(|p| p[c]).collect::<Vec<u8>>();
        let (gt_a, gt_b, gt_change) = (channel(0), channel(1), channel(2));
        let (pred_a, pred_b) = (classes(sa), classes(sb));
        expected.add(&ScdMaps { gt_a: &gt_a, gt_b: &gt_b, gt_change: &gt_change, pred_a: &pred_a, pred_b: &pred_b, pred_change: &change }).unwrap();
    }
    let expected = serde_json::to_value(expected.metrics()).unwrap();
    assert_eq!(json["conventions"]["clearscd"]["printed"], expected["printed"]);
}

#[test]
fn clearscd_needs_semantic_labels_that_fit_it() {
    let tmp = tempfile::tempdir().unwrap();
    let levir = format!("levir-cd:{}", common::levir_256().display());
    let out = tmp.path().join("run");
    let err = fails(&["train", "--model", "clearscd", "--dataset", &levir, "--train-split", "all", "--val-split", "all", "--out", s(&out), "--device", "cpu"]);
    assert!(err.contains("semantic change labels"), "{err}");
    // A semantic validation score needs a semantic model.
    let err = fails(&["train", "--model", "fc-ef", "--dataset", &levir, "--train-split", "all", "--val-split", "all", "--best-by", "sek", "--out", s(&out), "--device", "cpu"]);
    assert!(err.contains("--best-by sek scores semantic change models"), "{err}");

    let data = tmp.path().join("hiucd");
    synthetic_hiucd(&data);
    let dataset = format!("hiucd:{}", data.display());
    let err = fails(&train_args(&dataset, s(&out), &["--model-config", r#"{"num_classes": 4}"#]));
    assert!(err.contains("9 land-cover classes but the model has 4"), "{err}");

    // A mask value outside 0..9 is named with its file.
    let mask = data.join("train/mask_512/1_tile.png");
    changedet_raster::write_rgb_png(&mask, SIZE, SIZE, &vec![12; (SIZE * SIZE * 3) as usize]).unwrap();
    let err = fails(&train_args(&dataset, s(&out), &[]));
    assert!(err.contains("1_tile.png") && err.contains("[12]"), "{err}");
}
