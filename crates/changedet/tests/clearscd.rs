//! ClearSCD from the command line: importing the official checkpoint, predicting a real pair of
//! an arbitrary size (raw outputs equal the model called here), and the errors a user can meet.

mod common;

use std::path::Path;

use changedet_models::clearscd::{ClearScd, Config};
use changedet_models::{ChangeModel, ModelSpec, import, tensor_io};
use common::{fails, ok, s, shared_data};
use tch::nn::VarStore;
use tch::{Device, Tensor};

fn official_weights() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/golden/clearscd/weights.pth").canonicalize().unwrap()
}

/// A 640×384 crop of a real LEVIR-CD 1024² pair: any size that is a multiple of 32 must work.
fn cropped_pair(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let pair = shared_data("levir-cd-1024");
    let crop = |date: &str| {
        let img = image::open(pair.join(date).join("test_1.png")).unwrap().into_rgb8();
        let out = dir.join(format!("{date}.png"));
        image::imageops::crop_imm(&img, 128, 320, 640, 384).to_image().save(&out).unwrap();
        out
    };
    (crop("A"), crop("B"))
}

#[test]
fn predict_raw_equals_the_model_on_a_real_pair_of_any_multiple_of_32() {
    let tmp = tempfile::tempdir().unwrap();
    let checkpoint = tmp.path().join("clearscd.safetensors");
    let report = ok(&["import", s(&official_weights()), "--model", "clearscd", "--out", s(&checkpoint)]);
    assert!(report.contains("399 variables"), "{report}");
    assert!(report.contains("5 × EfficientNet classification head"), "{report}");

    let (before, after) = cropped_pair(tmp.path());
    let (out, raw) = (tmp.path().join("maps"), tmp.path().join("raw.safetensors"));
    ok(&["predict", "--checkpoint", s(&checkpoint), "--before", s(&before), "--after", s(&after), "--out", s(&out), "--raw", s(&raw), "--device", "cpu"]);

    // The model built and loaded here, from the official file, on the same pixels.
    let mut vs = VarStore::new(Device::Cpu);
    let model = ClearScd::new(&vs.root(), &Config::default());
    let path = official_weights();
    import::import_into(&mut vs, &ModelSpec::ClearScd(Config::default()), import::read_state_dict(&path).unwrap(), &path).unwrap();
    // As `predict` runs it on a CPU: channels-last kernels and batch norm folded (`layout.rs` and
    // `conv_bn.rs` bound their effects in their own tests).
    changedet_models::layout::weights_channels_last(&vs);
    model.freeze_for_inference();
    let input = |path: &Path| {
        let img = image::open(path).unwrap().into_rgb8();
        let mut chw = vec![0f32; img.len()];
        Config::default().normalization.write_chw(img.as_raw(), &mut chw);
        Tensor::from_slice(&chw).view([1, 3, 384, 640])
    };
    let expected = tch::no_grad(|| model.forward_scd(&input(&before), &input(&after), false));
    let written = tensor_io::read(&raw).unwrap().tensors;
    for (name, theirs) in [("seg_A", &expected.semantic[0]), ("seg_B", &expected.semantic[1]), ("BCD", &expected.change)] {
        let ours = &written[name];
        assert_eq!(ours.size(), theirs.size(), "{name}");
        let diff = (ours - theirs).abs().max().double_value(&[]);
        assert!(diff <= 1e-5, "{name} differs from the model's output by {diff}");
    }

    // The maps are the decisions of those outputs: argmax classes, change where the logit > 0.
    let classes = image::open(out.join("A_before_classes.png")).unwrap().into_rgb8();
    let palette = changedet_data::palette::HIUCD;
    let argmax = Vec::<i64>::try_from(expected.semantic[0].argmax(1, false).flatten(0, -1)).unwrap();
    assert!(classes.pixels().zip(&argmax).all(|(p, &c)| p.0 == palette[c as usize]));
    let change = image::open(out.join("A_change.png")).unwrap().into_luma8();
    let decided = Vec::<bool>::try_from(expected.change.gt(0.0).flatten(0, -1)).unwrap();
    assert!(change.pixels().zip(&decided).all(|(p, &d)| (p[0] == 255) == d));
    let from_to = image::open(out.join("A_fromto.png")).unwrap().into_luma8();
    let after_argmax = Vec::<i64>::try_from(expected.semantic[1].argmax(1, false).flatten(0, -1)).unwrap();
    for (i, p) in from_to.pixels().enumerate() {
        let expected_code = if decided[i] { 1 + 9 * argmax[i] + after_argmax[i] } else { 0 };
        assert_eq!(p[0] as i64, expected_code);
    }
}

#[test]
fn import_names_missing_and_misshaped_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.safetensors");

    // Six classes asked for, nine in the file: the first mismatching key and both shapes.
    let err = fails(&["import", s(&official_weights()), "--model", "clearscd", "--config", r#"{"num_classes": 6}"#, "--out", s(&out)]);
    assert!(err.contains("weights.pth") && err.contains("key 'head_bcd.convs.0.0.bias' has shape [9] but the model expects [6]"), "{err}");

    // A state dict (safetensors) that lacks one variable.
    let mut state_dict = import::read_state_dict(&official_weights()).unwrap();
    state_dict.remove("decoder.p5.weight");
    let partial = tmp.path().join("partial.safetensors");
    tensor_io::write(&partial, state_dict.iter().map(|(k, t)| (k.clone(), t)), Default::default()).unwrap();
    let err = fails(&["import", s(&partial), "--model", "clearscd", "--out", s(&out)]);
    assert!(err.contains("partial.safetensors") && err.contains("'decoder.p5.weight' is missing"), "{err}");

    // A truncated download.
    let bytes = std::fs::read(official_weights()).unwrap();
    let truncated = tmp.path().join("truncated.pth");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let err = fails(&["import", s(&truncated), "--model", "clearscd", "--out", s(&out)]);
    assert!(err.contains("truncated.pth"), "{err}");
    assert!(!out.exists(), "no checkpoint may be written after a failed import");
}

#[test]
fn predict_refuses_sizes_the_network_cannot_take() {
    let tmp = tempfile::tempdir().unwrap();
    let checkpoint = tmp.path().join("clearscd.safetensors");
    tch::manual_seed(1);
    let model = changedet_models::LoadedModel::new(ModelSpec::new("clearscd", None).unwrap(), Device::Cpu).unwrap();
    changedet_models::Checkpoint::write(&checkpoint, &model, &[], None).unwrap();
    let pair = shared_data("levir-cd-256");
    let crop = |date: &str| {
        let img = image::open(pair.join(date).join("test_2_0000_0000.png")).unwrap().into_rgb8();
        let out = tmp.path().join(format!("{date}.png"));
        image::imageops::crop_imm(&img, 0, 0, 250, 256).to_image().save(&out).unwrap();
        out
    };
    let (before, after) = (crop("A"), crop("B"));
    let err = fails(&["predict", "--checkpoint", s(&checkpoint), "--before", s(&before), "--after", s(&after), "--out", s(&tmp.path().join("maps")), "--device", "cpu"]);
    assert!(err.contains("250×256") && err.contains("multiples of 32"), "{err}");
}
