//! `clip-classes` and `clip-score` on the real LEVIR crops, with a CLIP assembled from the tiny
//! golden towers (`../shared/golden/clip`: the ViT image tower and the text tower share a 64-wide
//! embedding space). Pretrained CLIP cannot be downloaded here, so the class lists are those of
//! random weights: the tests check the layout the reference reads and that the numbers are the
//! model's own, not their meaning.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use changedet_data::class_lists::{ClassLists, DEFAULT_TAG, PROMPT_CLASSES, json_path};
use changedet_models::clip::{Clip, REMOTE_SENSING_CLASSES, Tokenizer, ZeroShot, zero_shot};
use changedet_models::tensor_io;
use common::{fails, levir_256, ok, s};
use serde_json::Value;
use tch::{Device, Tensor};

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/golden/clip").join(name)
}

/// One safetensors CLIP: `visual.*` from the ViT golden, the text tower from the text golden.
fn tiny_clip(dir: &Path) -> PathBuf {
    let mut tensors: BTreeMap<String, Tensor> = tensor_io::read(&golden("clip_vit_tiny.safetensors")).unwrap().tensors;
    tensors.extend(tensor_io::read(&golden("clip_text_tiny.safetensors")).unwrap().tensors);
    let path = dir.join("tiny-clip.safetensors");
    tensor_io::write(&path, tensors.iter().map(|(k, t)| (k.clone(), t)), Default::default()).unwrap();
    path
}

fn vocab() -> String {
    golden("bpe_simple_vocab_16e6.txt.gz").to_str().unwrap().to_owned()
}

#[test]
fn clip_classes_writes_the_reference_layout_for_each_date_folder() {
    let dir = tempfile::tempdir().unwrap();
    let clip = tiny_clip(dir.path());
    let out = dir.path().join("lists");
    let root = levir_256();
    let dataset = format!("levir-cd:{}", s(&root));
    let stdout = ok(&["clip-classes", "--clip", s(&clip), "--dataset", &dataset, "--out", s(&out), "--vocab", &vocab(), "--batch-size", "4", "--device", "cpu"]);
    assert!(stdout.contains("2 class-list file(s)"), "{stdout}");

    // The model computed independently of the command, for one image.
    let tokenizer = Tokenizer::from_file(&golden("bpe_simple_vocab_16e6.txt.gz")).unwrap();
    let (model, _) = Clip::load(&clip, Device::Cpu).unwrap();
    let resolution = model.input_resolution() as u32;
    let zero_shot = ZeroShot::new(model, &tokenizer, REMOTE_SENSING_CLASSES.map(String::from).to_vec());

    for date in ["A", "B"] {
        let file = json_path(&out.join(date), DEFAULT_TAG);
        let entries: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let entries = entries.as_array().unwrap();
        let images: Vec<_> = std::fs::read_dir(root.join(date)).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(entries.len(), images.len());
        for entry in entries {
            let image_path = PathBuf::from(entry["image_path"].as_str().unwrap());
            assert!(image_path.is_absolute() && image_path.starts_with(root.join(date)) && image_path.is_file());
        }
        let first = &entries[0];
        let image_path = first["image_path"].as_str().unwrap();
        let expected = {
            let pixels = zero_shot::preprocess(&image::open(image_path).unwrap().to_rgb8(), resolution);
            Vec::<f32>::try_from(zero_shot.scores(&pixels.unsqueeze(0)).1.get(0)).unwrap()
        };
        // The raw text keeps the reference's order: image_path, then classes by falling probability.
        let raw = std::fs::read_to_string(&file).unwrap();
        let object = &raw[raw.find('{').unwrap()..raw.find('}').unwrap()];
        let mut lines = object.lines().skip(1);
        assert_eq!(lines.next().unwrap().trim(), format!("\"image_path\": \"{image_path}\","));
        let mut previous = f32::INFINITY;
        let mut seen = Vec::new();
        for line in lines.filter(|l| !l.trim().is_empty()) {
            let (name, value) = line.trim().trim_end_matches(',').split_once(": ").unwrap();
            let (name, value) = (name.trim_matches('"'), value.trim_matches('"'));
            assert_eq!(value.len(), 6, "4 decimals: {value}");
            let p: f32 = value.parse().unwrap();
            assert!(p <= previous, "descending");
            previous = p;
            let class = REMOTE_SENSING_CLASSES.iter().position(|c| *c == name).unwrap();
            assert_eq!(value, format!("{:.4}", expected[class]), "{name}");
            seen.push(name.to_owned());
        }
        assert_eq!(seen.len(), 56);

        // ChangeCLIP's loader takes the first 9 as the prompt's classes.
        let lists = ClassLists::read(&file).unwrap();
        assert_eq!(lists.top(Path::new(image_path), PROMPT_CLASSES).unwrap(), &seen[..9]);
    }

    // A second run refuses to replace the files unless asked.
    let err = fails(&["clip-classes", "--clip", s(&clip), "--dataset", &dataset, "--out", s(&out), "--vocab", &vocab(), "--device", "cpu"]);
    assert!(err.contains("exists") && err.contains("--overwrite"), "{err}");
}

#[test]
fn clip_score_ranks_texts_and_explains_a_missing_vocabulary() {
    let dir = tempfile::tempdir().unwrap();
    let clip = tiny_clip(dir.path());
    let image = levir_256().join("A/test_7_0256_0512.png");
    let json = dir.path().join("scores.json");
    let stdout = ok(&["clip-score", s(&image), "--clip", s(&clip), "--text", "a building", "--text", "farmland", "--vocab", &vocab(), "--json", s(&json), "--device", "cpu"]);
    assert!(stdout.contains("a building") && stdout.contains("farmland"), "{stdout}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let scores = report["images"][0]["scores"].as_array().unwrap();
    let total: f64 = scores.iter().map(|s| s["probability"].as_f64().unwrap()).sum();
    assert!((total - 1.0).abs() < 1e-5 && scores[0]["probability"].as_f64() >= scores[1]["probability"].as_f64());

    let err = fails(&["clip-score", s(&image), "--clip", s(&clip), "--text", "x", "--vocab", "/nowhere/bpe.txt.gz", "--device", "cpu"]);
    assert!(err.contains("/nowhere/bpe.txt.gz") && err.contains("open_clip_torch"), "{err}");
}
