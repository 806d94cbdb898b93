//! OSCD's official archive from the command line (`../shared/data/oscd-archive`: four training
//! cities' 13 bands): a 13-band model trains with `--bands all`, its checkpoint records the
//! bands, `eval` reads them back by name, and a folder or a model that does not fit is refused.

mod common;

use std::path::Path;

use common::*;

const IMAGES: &str = "Onera Satellite Change Detection dataset - Images";

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn a_thirteen_band_model_trains_records_its_bands_and_evaluates() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = format!("oscd:{}", shared_data("oscd-archive").display());
    let run = tmp.path().join("run");
    let train = |config: &str, out: &Path| {
        vec![
            "train", "--model", "fc-ef", "--model-config", config, "--bands", "all", "--dataset", &archive, "--train-split", "all", "--val-split", "all",
            "--patches", "96:192", "--batch-size", "8", "--epochs", "1", "--device", "cpu", "--out", s(out),
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>()
    };
    let err = fails(&args(&train(r#"{"width": 4}"#, &tmp.path().join("rgb-model"))));
    assert!(err.contains("takes 3 bands per date, but the data gives 13") && err.contains("in_channels"), "{err}");

    let log = ok(&args(&train(r#"{"width": 4, "in_channels": 13}"#, &run)));
    assert!(log.contains("trained 1 epoch "), "{log}");
    let checkpoint = run.join("last.safetensors");
    let info = ok(&["info", s(&checkpoint)]);
    assert!(info.contains("input bands  B04,B03,B02,B08,B05,B06,B07,B8A,B11,B12,B01,B09,B10"), "{info}");
    let scores = ok(&["eval", "--checkpoint", s(&checkpoint), "--dataset", &archive, "--split", "all", "--device", "cpu"]);
    assert!(scores.contains("4 pairs") && scores.contains("f1"), "{scores}");

    // A copy of Paris without its B09 is refused, naming the folder and the band.
    let copy = tmp.path().join("copy");
    for date in ["imgs_1", "imgs_2"] {
        let (from, to) = (shared_data("oscd-archive").join(IMAGES).join("paris").join(date), copy.join(IMAGES).join("paris").join(date));
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(&from).unwrap() {
            let path = entry.unwrap().path();
            if !s(&path).ends_with("_B09.tif") {
                std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
            }
        }
    }
    let labels = "Onera Satellite Change Detection dataset - Train Labels/paris/cm";
    std::fs::create_dir_all(copy.join(labels)).unwrap();
    std::fs::copy(shared_data("oscd-archive").join(labels).join("paris-cm.tif"), copy.join(labels).join("paris-cm.tif")).unwrap();
    let err = fails(&["eval", "--checkpoint", s(&checkpoint), "--dataset", &format!("oscd:{}", s(&copy)), "--split", "all", "--device", "cpu"]);
    let err = err.replace("\n", " ");
    assert!(err.contains("band B09 is missing") && err.contains("paris/imgs_1") && err.contains("trained on Sentinel-2 bands"), "{err}");
}
