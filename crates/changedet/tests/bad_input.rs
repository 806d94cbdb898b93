//! Every kind of bad input gets one clear error naming the file and the problem, a non-zero exit
//! status, and leaves no partial output behind.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use changedet_models::{Checkpoint, LoadedModel, ModelSpec, tensor_io};
use common::*;

fn gray(path: &Path, w: u32, h: u32, values: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let data: Vec<u8> = (0..(w * h) as usize).map(|i| values[i % values.len()]).collect();
    changedet_raster::write_gray_png(path, w, h, &data).unwrap();
}

fn rgb(path: &Path, w: u32, h: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let data: Vec<u8> = (0..(w * h * 3) as usize).map(|i| (i * 7 % 251) as u8).collect();
    changedet_raster::write_rgb_png(path, w, h, &data).unwrap();
}

/// A dataset folder `A/ B/ label/` with one 64×64 pair named x.png.
fn dataset(root: &Path) -> String {
    rgb(&root.join("A/x.png"), 64, 64);
    rgb(&root.join("B/x.png"), 64, 64);
    gray(&root.join("label/x.png"), 64, 64, &[0, 255]);
    format!("levir-cd:{}", root.display())
}

fn checkpoint(dir: &Path) -> PathBuf {
    let path = dir.join("model.safetensors");
    let model = LoadedModel::new(ModelSpec::new("fc-siam-diff", None).unwrap(), tch::Device::Cpu).unwrap();
    Checkpoint::write(&path, &model, &[], None).unwrap();
    path
}

fn eval_fails(checkpoint: &Path, dataset: &str) -> String {
    fails(&["eval", "--checkpoint", s(checkpoint), "--dataset", dataset, "--split", "all", "--device", "cpu"])
}

#[test]
fn dates_of_different_sizes() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = dataset(tmp.path());
    rgb(&tmp.path().join("B/x.png"), 32, 64);
    let err = fails(&["train", "--dataset", &spec, "--train-split", "all", "--val-split", "all", "--out", s(&tmp.path().join("run")), "--device", "cpu"]);
    assert!(err.contains("B/x.png") && err.contains("32×64") && err.contains("64×64"), "{err}");
}

#[test]
fn missing_label_and_date_files() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = dataset(tmp.path());
    let ckpt = checkpoint(tmp.path());
    std::fs::remove_file(tmp.path().join("label/x.png")).unwrap();
    let err = eval_fails(&ckpt, &spec);
    assert!(err.contains("label/x.png") && err.contains("missing label"), "{err}");
    std::fs::remove_file(tmp.path().join("B/x.png")).unwrap();
    let err = eval_fails(&ckpt, &spec);
    assert!(err.contains("B/x.png") && err.contains("missing after-date"), "{err}");
}

#[test]
fn corrupt_image_names_the_file_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    dataset(tmp.path());
    let ckpt = checkpoint(tmp.path());
    let before = tmp.path().join("A/x.png");
    let bytes = std::fs::read(&before).unwrap();
    std::fs::write(&before, &bytes[..bytes.len() / 2]).unwrap();
    let out = tmp.path().join("maps");
    let err = fails(&[
        "predict", "--checkpoint", s(&ckpt), "--before", s(&before), "--after", s(&tmp.path().join("B/x.png")),
        "--out", s(&out), "--device", "cpu",
    ]);
    assert!(err.contains("A/x.png") && err.contains("cannot read image"), "{err}");
    assert!(std::fs::read_dir(&out).map(|d| d.count()).unwrap_or(0) == 0, "no output for a failed pair");
    assert!(partial_files(&out).is_empty());
}

/// Libraries repeat their source's message in their own: it is said once.
#[test]
fn an_error_and_its_causes_say_each_thing_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (not_png, not_tiff) = (tmp.path().join("x.png"), tmp.path().join("x.tif"));
    std::fs::write(&not_png, b"not a png").unwrap();
    std::fs::write(&not_tiff, b"II*\0garbage").unwrap();
    let out = tmp.path().join("maps");
    let png = fails(&["predict", "--before", s(&not_png), "--after", s(&not_png), "--out", s(&out), "--device", "cpu"]);
    assert_eq!(png.matches("Invalid PNG signature").count(), 1, "{png}");
    let tiff = fails(&["predict", "--before", s(&not_tiff), "--after", s(&not_tiff), "--scene", "--out", s(&out), "--device", "cpu"]);
    assert!(tiff.contains("x.tif"), "{tiff}");
    assert_eq!(tiff.matches("TIFFReadDirectory").count(), 1, "{tiff}");
}

#[test]
fn label_with_unexpected_values() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = dataset(tmp.path());
    gray(&tmp.path().join("label/x.png"), 64, 64, &[0, 3, 255]);
    let err = eval_fails(&checkpoint(tmp.path()), &spec);
    assert!(err.contains("label/x.png") && err.contains("[0, 3, 255]"), "{err}");
}

#[test]
fn empty_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("A")).unwrap();
    std::fs::create_dir_all(tmp.path().join("B")).unwrap();
    let err = eval_fails(&checkpoint(tmp.path()), &format!("levir-cd:{}", tmp.path().display()));
    assert!(err.contains("no image pairs found") && err.contains("/A"), "{err}");
}

#[test]
fn checkpoint_of_another_model_or_with_missing_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = dataset(tmp.path());
    let ckpt = checkpoint(tmp.path());
    let file = tensor_io::read(&ckpt).unwrap();

    // Weights of a three-class network under a two-class configuration.
    let three = tmp.path().join("three.safetensors");
    let other = LoadedModel::new(ModelSpec::new("fc-siam-diff", Some(serde_json::json!({"num_classes": 3}))).unwrap(), tch::Device::Cpu).unwrap();
    Checkpoint::write(&three, &other, &[], None).unwrap();
    let mut mislabelled = tensor_io::read(&three).unwrap();
    mislabelled.metadata.insert("config".into(), file.metadata["config"].clone());
    tensor_io::write(&three, mislabelled.tensors.iter().map(|(k, t)| (k.clone(), t)), mislabelled.metadata).unwrap();
    let err = eval_fails(&three, &spec);
    assert!(err.contains("three.safetensors") && err.contains("conv11d.bias") && err.contains("shape [3] but the model expects [2]"), "{err}");

    let missing = tmp.path().join("missing.safetensors");
    let kept = file.tensors.iter().filter(|(k, _)| *k != "model.conv21.weight").map(|(k, t)| (k.clone(), t));
    tensor_io::write(&missing, kept, file.metadata.clone()).unwrap();
    let err = eval_fails(&missing, &spec);
    assert!(err.contains("missing.safetensors") && err.contains("'conv21.weight' is missing"), "{err}");

    let foreign = tmp.path().join("foreign.safetensors");
    tensor_io::write(&foreign, file.tensors.iter().map(|(k, t)| (k.clone(), t)), HashMap::new()).unwrap();
    let err = eval_fails(&foreign, &spec);
    assert!(err.contains("foreign.safetensors") && err.contains("not a changedet checkpoint"), "{err}");
}

#[test]
fn truncated_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = dataset(tmp.path());
    let ckpt = checkpoint(tmp.path());
    let bytes = std::fs::read(&ckpt).unwrap();
    std::fs::write(&ckpt, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let err = eval_fails(&ckpt, &spec);
    assert!(err.contains("model.safetensors") && err.contains("truncated or corrupt"), "{err}");
    let err = fails(&["info", s(&ckpt)]);
    assert!(err.contains("model.safetensors"), "{err}");
}

#[test]
fn unwritable_output_folder() {
    let tmp = tempfile::tempdir().unwrap();
    dataset(tmp.path());
    let ckpt = checkpoint(tmp.path());
    let blocker = tmp.path().join("a-file");
    std::fs::write(&blocker, b"not a folder").unwrap();
    let out = blocker.join("maps");
    let err = fails(&[
        "predict", "--checkpoint", s(&ckpt), "--before", s(&tmp.path().join("A/x.png")), "--after", s(&tmp.path().join("B/x.png")),
        "--out", s(&out), "--device", "cpu",
    ]);
    assert!(err.contains("a-file/maps") && err.contains("cannot create the output folder"), "{err}");
    let err = fails(&["eval", "--checkpoint", s(&ckpt), "--dataset", &format!("levir-cd:{}", tmp.path().display()), "--split", "all", "--json", s(&blocker.join("m.json")), "--device", "cpu"]);
    assert!(err.contains("a-file/m.json"), "{err}");
    let run = blocker.join("run");
    let err = fails(&["train", "--dataset", &format!("levir-cd:{}", tmp.path().display()), "--train-split", "all", "--val-split", "all", "--out", s(&run), "--device", "cpu"]);
    assert!(err.contains("a-file/run"), "{err}");
}

/// A valid safetensors file whose float weights are stored as I32 used to load and predict no
/// change at all: it is refused, naming the file and a tensor.
#[test]
fn a_checkpoint_of_integer_weights_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = dataset(tmp.path());
    let ckpt = checkpoint(tmp.path());
    let file = tensor_io::read(&ckpt).unwrap();
    let ints: Vec<(String, tch::Tensor)> = file.tensors.iter().map(|(k, t)| (k.clone(), t.to_kind(tch::Kind::Int))).collect();
    tensor_io::write(&ckpt, ints.iter().map(|(k, t)| (k.clone(), t)), file.metadata).unwrap();
    let err = eval_fails(&ckpt, &spec);
    assert!(err.contains(&ckpt.display().to_string()) && err.contains("stored as I32"), "{err}");
}

#[test]
fn nan_lengths_and_array_configurations_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let scene = |option: &str, value: &str| {
        fails(&["predict", "--before", "a.tif", "--after", "b.tif", "--out", s(&tmp.path().join("o")), "--vector", "v.gpkg", option, value])
    };
    for option in ["--min-area", "--simplify"] {
        let err = scene(option, "NaN");
        assert!(err.contains(option) && err.contains("finite"), "{err}");
    }
    let err = fails(&["train", "--model", "fc-ef", "--model-config", "[1,2,3]", "--dataset", &dataset(tmp.path()), "--out", s(&tmp.path().join("run"))]);
    assert!(err.contains("JSON object") && err.contains("[1,2,3]"), "{err}");
}

/// A pair smaller than FC-Siam-diff's four poolings allow is refused naming its file and the
/// minimum (it used to fail inside libtorch with "Output size is too small" and no file).
#[test]
fn pairs_below_the_models_smallest_side_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    rgb(&tmp.path().join("A/tiny.png"), 12, 40);
    rgb(&tmp.path().join("B/tiny.png"), 12, 40);
    let ckpt = checkpoint(tmp.path());
    let err = fails(&["predict", "--checkpoint", s(&ckpt), "--before", s(&tmp.path().join("A/tiny.png")), "--after", s(&tmp.path().join("B/tiny.png")), "--out", s(&tmp.path().join("out")), "--device", "cpu"]);
    assert!(err.contains("A/tiny.png") && err.contains("12×40") && err.contains("at least 16 pixels"), "{err}");
}

/// Entries that look like images but cannot be read as files (a loop of symbolic links) are
/// skipped with a warning naming them, not silently.
#[test]
fn looping_symbolic_links_are_named_when_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = dataset(tmp.path());
    let ckpt = checkpoint(tmp.path());
    let a = tmp.path().join("A");
    std::os::unix::fs::symlink(a.join("loop2.png"), a.join("loop1.png")).unwrap();
    std::os::unix::fs::symlink(a.join("loop1.png"), a.join("loop2.png")).unwrap();
    let out = changedet(&["eval", "--checkpoint", s(&ckpt), "--dataset", &spec, "--split", "all", "--device", "cpu"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("skipped 2 entries") && stderr.contains("loop1.png") && stderr.contains("loop2.png"), "{stderr}");
}
