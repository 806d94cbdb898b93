//! `changedet predict` on a real georeferenced scene pair (CBERS-4, four band files per date),
//! `--shard` + `merge`, and the command-line refusals of the scene options.

mod common;

use std::path::{Path, PathBuf};

use changedet_models::{Checkpoint, LoadedModel, ModelSpec};
use common::*;

fn checkpoint(dir: &Path) -> PathBuf {
    write_checkpoint(&dir.join("model.safetensors"), "fc-siam-diff", 3, |_| ())
}

/// A checkpoint of the model `name` initialised from `seed`, its weights changed by `edit` first.
fn write_checkpoint(path: &Path, name: &str, seed: i64, edit: impl FnOnce(&LoadedModel)) -> PathBuf {
    tch::manual_seed(seed);
    let model = LoadedModel::new(ModelSpec::new(name, None).unwrap(), tch::Device::Cpu).unwrap();
    edit(&model);
    Checkpoint::write(path, &model, &[], None).unwrap();
    path.to_owned()
}

/// One date's band files, comma-separated, blue to NIR.
fn cbers(date: &str) -> String {
    let dir = shared_data(&format!("cbers4-awfi-2date/{date}"));
    let mut files: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path().display().to_string()).collect();
    files.sort();
    files.join(",")
}

fn pixels<T: gdal::raster::GdalType + Copy>(path: &Path) -> Vec<T> {
    let ds = gdal::Dataset::open(path).unwrap();
    let size = ds.raster_size();
    ds.rasterband(1).unwrap().read_as::<T>((0, 0), size, size, None).unwrap().into_shape_and_vec().1
}

#[test]
fn predict_scene_shards_and_merge_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = checkpoint(dir.path());
    let (before, after) = (cbers("A"), cbers("B"));
    let out = dir.path().join("whole");
    let vector = out.join("changes.geojson");
    let scene = |out: &Path, extra: &[&str]| {
        let mut args = vec!["predict", "--checkpoint", s(&ckpt), "--before", &before, "--after", &after, "--bands", "3,2,1"];
        args.extend(["--tile", "32", "--overlap", "8", "--device", "cpu", "--out", s(out)]);
        args.extend(extra);
        args.iter().map(|a| a.to_string()).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let stdout = run(scene(&out, &["--block", "1", "--vector", s(&vector)]));
    assert!(stdout.contains("50×50 px, 4 tiles in 9 blocks") && stdout.contains("polygons"), "{stdout}");
    assert!(out.join("change.tif").is_file() && out.join("probability.tif").is_file() && vector.is_file());

    let args = scene(&out, &["--block", "1"]);
    let err = fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("change.tif exists; pass --overwrite"), "{err}");

    let parts: Vec<PathBuf> = (1..=3).map(|i| dir.path().join(format!("part{i}"))).collect();
    for (i, part) in parts.iter().enumerate() {
        let stdout = run(scene(part, &["--block", "1", "--shard", &format!("{}/3", i + 1)]));
        assert!(stdout.contains(&format!("shard {}/3", i + 1)), "{stdout}");
    }
    let merged = dir.path().join("merged");
    let merged_vector = merged.join("changes.geojson");
    let stdout = ok(&["merge", s(&parts[1]), s(&parts[0]), s(&parts[2]), "--out", s(&merged), "--vector", s(&merged_vector)]);
    assert!(stdout.contains("50×50 px"), "{stdout}");
    // Each shard computes the tiles straddling into it again; the blend is the same to the bit.
    assert_eq!(pixels::<u8>(&merged.join("change.tif")), pixels::<u8>(&out.join("change.tif")));
    let bits = |path: &Path| pixels::<f32>(path).iter().map(|p| p.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&merged.join("probability.tif")), bits(&out.join("probability.tif")));
    // One block for the whole scene keeps no tile for later: the same blend.
    let one_block = dir.path().join("one-block");
    assert!(run(scene(&one_block, &["--block", "8"])).contains("4 tiles in 1 block;"));
    assert_eq!(bits(&one_block.join("probability.tif")), bits(&out.join("probability.tif")));
    assert_eq!(std::fs::read_to_string(&merged_vector).unwrap().matches("\"Feature\"").count(), std::fs::read_to_string(&vector).unwrap().matches("\"Feature\"").count());
}

#[test]
fn scene_options_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = checkpoint(dir.path());
    let (before, after) = (cbers("A"), cbers("B"));
    let out = dir.path().join("out");
    let base = ["predict", "--checkpoint", s(&ckpt), "--before", &before, "--after", &after, "--device", "cpu", "--out", s(&out)];
    let with = |extra: &[&str]| base.iter().chain(extra).map(|a| a.to_string()).collect::<Vec<String>>();
    let fails_with = |extra: &[&str]| fails(&with(extra).iter().map(String::as_str).collect::<Vec<_>>());
    let err = fails_with(&["--bands", "3,2,1", "--tile", "64", "--overlap", "64"]);
    assert!(err.contains("overlap (64 px) must be smaller than the tile (64 px)"), "{err}");
    let err = fails_with(&["--bands", "3,2,1", "--shard", "4/3"]);
    assert!(err.contains("bad shard '4/3'"), "{err}");
    let err = fails_with(&["--bands", "3,2,1", "--scale", "divide:0"]);
    assert!(err.contains("bad scaling 'divide:0'"), "{err}");
    let err = fails_with(&["--bands", "3,2,1", "--vector", s(&dir.path().join("x.shp"))]);
    assert!(err.contains("x.shp: polygons are written as .gpkg or .geojson"), "{err}");
    assert!(!out.join("change.tif").exists());
    // Scene options on plain images need --scene.
    let png = levir_256().join("A/test_102_0512_0000.png");
    let err = fails(&["predict", "--checkpoint", s(&ckpt), "--before", s(&png), "--after", s(&png), "--tile", "64", "--out", s(&out)]);
    assert!(err.contains("add --scene"), "{err}");
}

/// A disk that fills up mid-run (simulated with a file-size limit, so writes fail with EFBIG as
/// they would with ENOSPC): a clear error, and nothing left in the output folder.
#[test]
fn a_full_disk_leaves_no_partial_maps() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = checkpoint(dir.path());
    let out = dir.path().join("out");
    let (before, after) = (shared_data("levir-cd-1024/A/test_3.png"), shared_data("levir-cd-1024/B/test_3.png"));
    let script = format!(
        "ulimit -f 256; trap '' XFSZ; exec '{}' predict --checkpoint '{}' --before '{}' --after '{}' --scene --tile 256 --overlap 32 --block 1 --device cpu --out '{}'",
        env!("CARGO_BIN_EXE_changedet"),
        s(&ckpt),
        s(&before),
        s(&after),
        s(&out)
    );
    let output = std::process::Command::new("sh").arg("-c").arg(&script).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains(".tif"), "the error names the file: {stderr}");
    let left: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A model whose outputs are not finite (finite weights so large that the activations overflow:
/// NaN weights are refused at load) stops a scene with an error naming the block, before any
/// map is written: nothing is left in the output folder.
#[test]
fn non_finite_scores_stop_a_scene_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_checkpoint(&dir.path().join("overflow.safetensors"), "fc-siam-diff", 3, |model| {
        let classifier = &model.vs.variables()["conv11d.weight"];
        tch::no_grad(|| {
            let _ = classifier.shallow_clone().fill_(f64::from(f32::MAX));
        });
    });
    let out = dir.path().join("out");
    let (before, after) = (cbers("A"), cbers("B"));
    let args = ["predict", "--checkpoint", s(&path), "--before", &before, "--after", &after, "--bands", "3,2,1", "--tile", "32", "--overlap", "8"];
    let err = fails(&[&args[..], &["--block", "1", "--device", "cpu", "--out", s(&out)]].concat());
    assert!(err.contains("the model produced non-finite scores for the block of columns 0..24, rows 0..24"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// A semantic model's scene maps (both dates' classes and from→to codes) come out the same, to
/// the bit, whether its tiles' outputs are kept across many small blocks or the scene is one
/// block, and the class maps are not constant.
#[test]
fn semantic_scene_maps_do_not_depend_on_the_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = write_checkpoint(&dir.path().join("clearscd.safetensors"), "clearscd", 5, |_| ());
    let (before, after) = (shared_data("levir-cd-1024/A/test_3.png"), shared_data("levir-cd-1024/B/test_3.png"));
    let run = |out: &Path, block: &str| {
        let args = ["predict", "--checkpoint", s(&ckpt), "--before", s(&before), "--after", s(&after), "--scene"];
        let stdout = ok(&[&args[..], &["--tile", "256", "--overlap", "32", "--block", block, "--device", "cpu", "--out", s(out)]].concat());
        assert!(stdout.contains("25 tiles"), "{stdout}");
    };
    let (small, whole) = (dir.path().join("small-blocks"), dir.path().join("one-block"));
    run(&small, "1");
    run(&whole, "8");
    for map in ["before_classes", "after_classes", "fromto", "change"] {
        let file = format!("{map}.tif");
        assert_eq!(pixels::<u8>(&small.join(&file)), pixels::<u8>(&whole.join(&file)), "{map}");
    }
    let classes = pixels::<u8>(&small.join("before_classes.tif"));
    assert!(classes.iter().any(|&c| c != classes[0]), "a constant class map tests nothing");
}

/// A polygon file whose folder is missing is refused before any work, naming that file, and
/// leaves nothing behind (it used to be found after the whole scene, as a GDAL error on
/// change.tif, with the maps left without their record so that the rerun was refused).
#[test]
fn an_unwritable_vector_path_is_refused_before_the_scene_is_computed() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = checkpoint(dir.path());
    let out = dir.path().join("out");
    let vector = dir.path().join("missing/changes.gpkg");
    let (before, after) = (cbers("A"), cbers("B"));
    let err = fails(&["predict", "--checkpoint", s(&ckpt), "--before", &before, "--after", &after, "--bands", "3,2,1", "--device", "cpu", "--out", s(&out), "--vector", s(&vector)]);
    assert!(err.contains(&vector.display().to_string()) && err.contains("missing or not writable"), "{err}");
    assert!(std::fs::read_dir(&out).map(|d| d.count()).unwrap_or(0) == 0, "nothing written to {}", out.display());
}

/// `--threshold` on a scene: the change map is the probability map cut there (nodata kept),
/// and scene.json records it.
#[test]
fn a_scene_is_cut_at_the_threshold_given() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = checkpoint(dir.path());
    let (before, after) = (cbers("A"), cbers("B"));
    let predict = |threshold: &str| {
        let out = dir.path().join(threshold);
        let args = ["predict", "--checkpoint", s(&ckpt), "--before", &before, "--after", &after, "--bands", "3,2,1", "--tile", "32", "--overlap", "8"];
        let said = ok(&[&args[..], &["--threshold", threshold, "--device", "cpu", "--out", s(&out)]].concat());
        assert!(said.contains(&format!("changed (probability > {threshold})")), "{said}");
        let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("scene.json")).unwrap()).unwrap();
        assert_eq!(record["threshold"].as_f64(), Some(threshold.parse().unwrap()));
        (pixels::<u8>(&out.join("change.tif")), pixels::<f32>(&out.join("probability.tif")))
    };
    // Thresholds at the quartiles of this untrained model's probabilities, which sit far from ½.
    let (_, probability) = predict("0.5");
    let mut sorted: Vec<f32> = probability.iter().copied().filter(|p| !p.is_nan()).collect();
    sorted.sort_by(f32::total_cmp);
    for quartile in 1..=3 {
        let threshold = format!("{:.4}", sorted[sorted.len() * quartile / 4]);
        let (change, probability) = predict(&threshold);
        let t: f32 = threshold.parse().unwrap();
        // Away from the cut by more than float rounding, the map is the probability's cut.
        for (&c, &p) in change.iter().zip(&probability).filter(|(_, p)| (**p - t).abs() > 1e-5) {
            assert_eq!(c, if p.is_nan() { 255 } else { u8::from(p > t) }, "threshold {t}: probability {p}");
        }
        let marked = change.iter().filter(|&&c| c == 1).count() as f64 / sorted.len() as f64;
        assert!((marked - (1.0 - quartile as f64 / 4.0)).abs() < 0.02, "threshold {t}: {marked} of the pixels marked");
    }
}

/// Off a terminal (a batch job's log), a scene says its plan before any work and then its
/// progress in lines; so do dataset predictions, evaluations and trainings.
#[test]
fn a_plan_and_progress_lines_when_stderr_is_not_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = checkpoint(dir.path());
    let (before, after) = (cbers("A"), cbers("B"));
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_changedet")).args(args).env("CHANGEDET_PROGRESS_SECONDS", "0").output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stderr).unwrap()
    };
    let out = dir.path().join("scene");
    let args = ["predict", "--checkpoint", s(&ckpt), "--before", &before, "--after", &after, "--bands", "3,2,1", "--tile", "32", "--overlap", "8", "--device", "cpu", "--out", s(&out)];
    let log = run(&args);
    let plan = log.lines().position(|l| l.starts_with("plan: 50×50 px (0.0 Mpx), 4 tiles of 32 px in 1 block; scaling and statistics from every pixel; model time about")).expect(&log);
    let last = log.lines().position(|l| l.starts_with("scene: 4/4 tiles (100.0 %)")).expect(&log);
    assert!(plan < last, "{log}");

    let egy = format!("generic:{}", shared_data("egy-bcd-256").display());
    let log = run(&["eval", "--checkpoint", s(&ckpt), "--dataset", &egy, "--split", "val", "--device", "cpu"]);
    assert!(log.contains("eval: 3/3 pairs (100.0 %)"), "{log}");
    let log = run(&["predict", "--checkpoint", s(&ckpt), "--dataset", &egy, "--split", "val", "--out", s(&dir.path().join("maps")), "--device", "cpu"]);
    assert!(log.contains("predict: 3/3 pairs (100.0 %)"), "{log}");
    let run_dir = dir.path().join("run");
    let log = run(&["train", "--dataset", &egy, "--train-split", "val", "--val-split", "val", "--epochs", "1", "--out", s(&run_dir), "--device", "cpu"]);
    let line = log.lines().find(|l| l.starts_with("training: ") && l.contains(" steps (100.0 %) (epoch 1/1, loss ")).expect(&log);
    assert!(line.contains("elapsed, about 0:00 left"), "{line}");
}
