//! What the README's reliability section promises: values that would crash are refused at
//! parsing, a run is never overwritten by accident, a resumed run keeps its recipe and survives a
//! torn log line, and libtorch's failures end the command with one line.

mod common;

use std::path::Path;

use common::*;

const PAIRS: [&str; 2] = ["test_102_0512_0000.png", "test_121_0768_0256.png"];

/// A quick run: a narrow FC-Siam-diff, one epoch of the two pairs.
fn train_args<'a>(dataset: &'a str, split: &'a str, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "train", "--dataset", dataset, "--train-split", split, "--val-split", split, "--out", s(out), "--model-config", r#"{"width": 4}"#,
        "--epochs", "2", "--batch-size", "2", "--crop", "32", "--device", "cpu",
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn values_that_would_crash_are_refused_at_parsing() {
    let levir = format!("levir-cd:{}", levir_256().display());
    for (args, option) in [
        (vec!["train", "--dataset", &levir, "--out", "/tmp/unused", "--val-every", "0"], "--val-every"),
        (vec!["train", "--dataset", &levir, "--out", "/tmp/unused", "--batch-size", "0"], "--batch-size"),
        (vec!["bench", "--iters", "0"], "--iters"),
        (vec!["bench", "--size", "0"], "--size"),
        (vec!["eval", "--checkpoint", "x", "--dataset", &levir, "--batch-size", "0"], "--batch-size"),
        (vec!["predict", "--checkpoint", "x", "--before", "a.tif", "--after", "b.tif", "--out", "o", "--tile", "0"], "--tile"),
    ] {
        let err = fails(&args);
        assert!(err.contains(option) && err.contains("at least 1"), "{err}");
    }
    // Thread counts beyond any machine would make the thread pools fail to start.
    for threads in ["0", "100000"] {
        let err = fails(&["--threads", threads, "info", "--models"]);
        assert!(err.contains("--threads") && err.contains("1..=1024"), "{err}");
    }
    let err = fails(&["train", "--dataset", &levir, "--out", "/tmp/unused", "--patches", "96:0"]);
    assert!(err.contains("--patches") && err.contains("SIDE:STRIDE"), "{err}");
}

#[test]
fn runs_are_not_overwritten_and_resume_keeps_its_recipe() {
    let tmp = tempfile::tempdir().unwrap();
    let dataset = format!("levir-cd:{}", levir_256().display());
    let split = write_list(&tmp.path().join("two.txt"), &PAIRS);
    let out = tmp.path().join("run");
    ok(&train_args(&dataset, &split, &out, &["--max-steps", "1"]));
    let before = std::fs::read(out.join("last.safetensors")).unwrap();

    // A second run into the same folder is refused, and the first run is untouched.
    let err = fails(&train_args(&dataset, &split, &out, &[]));
    assert!(err.contains("holds a training run") && err.contains("--resume") && err.contains("--overwrite"), "{err}");
    assert_eq!(std::fs::read(out.join("last.safetensors")).unwrap(), before);

    // Options that would change the run's recipe are refused on --resume, each named.
    let err = fails(&train_args(&dataset, &split, &out, &["--resume", "--lr", "0.5", "--schedule", "poly:0.9"]));
    assert!(err.contains("--lr 0.5") && err.contains("--schedule") && err.contains("own recipe"), "{err}");

    // A training split of another size would shift the data order: refused.
    let three = write_list(&tmp.path().join("three.txt"), &[PAIRS[0], PAIRS[1], "test_2_0000_0000.png"]);
    let err = fails(&train_args(&dataset, &three, &out, &["--resume"]));
    assert!(err.contains("trained on 2 pairs") && err.contains("has 3"), "{err}");

    // A crash while appending to the log leaves a torn last line: resuming repairs it.
    let log = out.join("metrics.jsonl");
    let mut text = std::fs::read_to_string(&log).unwrap_or_default();
    text.push_str("{\"epoch\": 2, \"st");
    std::fs::write(&log, text).unwrap();
    ok(&train_args(&dataset, &split, &out, &["--resume"]));
    let lines: Vec<String> = std::fs::read_to_string(&log).unwrap().lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.iter().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "{lines:?}");

    // --overwrite starts over, with the new recipe.
    ok(&train_args(&dataset, &split, &out, &["--overwrite", "--seed", "3"]));
    let state = changedet_models::Checkpoint::read(&out.join("last.safetensors")).unwrap().training.unwrap();
    assert_eq!((state["epoch"].as_u64(), state["recipe"]["seed"].as_u64()), (Some(2), Some(3)));
}

#[test]
fn libtorch_failures_end_the_command_with_one_line() {
    // 3 × 200000² floats per date: far beyond this machine's memory, refused by the allocator.
    let output = changedet(&["bench", "--size", "200000", "--iters", "1", "--device", "cpu"]);
    assert!(!output.status.success());
    let err = String::from_utf8(output.stderr).unwrap();
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].starts_with("error: out of memory (DefaultCPUAllocator: can't allocate memory") && lines[0].contains("--batch-size"), "{err}");
    assert!(lines[0].len() < 300 && !lines[0].contains("frame #"), "libtorch's stack frames are not for users: {err}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
}

#[test]
fn options_that_do_not_apply_are_refused_not_ignored() {
    let d = shared_data("levir-cd-1024");
    let (a, b) = (d.join("A/test_1.png"), d.join("B/test_1.png"));
    let pair = format!("{},{}", s(&a), s(&b));
    let err = fails(&["bench", "--scene", "2048", "--scene-from", &pair, "--iters", "3"]);
    assert!(err.contains("--iters") && err.contains("--scene"), "{err}");
    let err = fails(&["train", "--dataset", &format!("levir-cd:{}", s(&d)), "--out", "/tmp/unused", "--precision", "fp16"]);
    assert!(err.contains("--precision") && err.contains("loss scaling") && err.contains("bf16"), "{err}");
    let err = fails(&["bench", "--rounds", "3"]);
    assert!(err.contains("--rounds") && err.contains("--scene"), "{err}");
    let tif = shared_data("geotiff-single").join("RGB.byte.tif");
    for option in [["--label", s(&a)], ["--protocol", "levir-tiles"], ["--ignore-value", "7"]] {
        let mut args = vec!["predict", "--checkpoint", "unused.safetensors", "--before", s(&tif), "--after", s(&tif), "--out", "/tmp/unused"];
        args.extend(option);
        let err = fails(&args);
        assert!(err.contains(option[0]) && err.contains("not to georeferenced scenes"), "{err}");
    }
}

#[test]
fn every_command_replaces_outputs_only_with_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let model = changedet_models::LoadedModel::new(changedet_models::ModelSpec::new("fc-siam-diff", Some(serde_json::json!({"width": 2}))).unwrap(), tch::Device::Cpu).unwrap();
    let checkpoint = tmp.path().join("model.safetensors");
    changedet_models::Checkpoint::write(&checkpoint, &model, &[], None).unwrap();
    let levir = levir_256();
    let (a, b) = (levir.join("A").join(PAIRS[0]), levir.join("B").join(PAIRS[0]));
    let maps = tmp.path().join("maps");
    let predict = ["predict", "--checkpoint", s(&checkpoint), "--before", s(&a), "--after", s(&b), "--out", s(&maps), "--device", "cpu"];
    ok(&predict);
    let err = fails(&predict);
    assert!(err.contains("test_102_0512_0000_change.png exists; pass --overwrite"), "{err}");
    ok(&[&predict[..], &["--overwrite"]].concat());

    // The maps folder scored against itself: only whether the JSON may be replaced matters here.
    let json = tmp.path().join("scores.json");
    std::fs::write(&json, "{}").unwrap();
    let err = fails(&["metrics", "--pred", s(&maps), "--gt", s(&maps), "--convention", "binary", "--json", s(&json)]);
    assert!(err.contains("scores.json exists; pass --overwrite"), "{err}");
    assert_eq!(std::fs::read_to_string(&json).unwrap(), "{}", "refused before any work");

    let err = fails(&["import", s(&checkpoint), "--model", "fc-siam-diff", "--out", s(&checkpoint)]);
    assert!(err.contains("model.safetensors exists; pass --overwrite"), "{err}");
}
