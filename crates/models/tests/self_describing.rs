//! Models describe themselves, so nothing outside this crate knows a model: no model name as a
//! string, no model type (what a downcast would name), no `ModelSpec` variant and no `as_any`
//! appears in another crate's sources. And every
//! configuration field changes what is built: each model builds and runs at a non-default size.

use std::fs;
use std::path::{Path, PathBuf};

use changedet_data::Preset;
use changedet_models::{LoadedModel, MODEL_NAMES, ModelSpec};
use serde_json::json;
use tch::{Device, Kind, Tensor};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The types that implement `ChangeModel` in this crate's sources.
fn model_types() -> Vec<String> {
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let mut types: Vec<String> = files
        .iter()
        .flat_map(|f| fs::read_to_string(f).unwrap().lines().filter_map(|l| l.split("impl ChangeModel for ").nth(1).map(|rest| rest.chars().take_while(|c| c.is_alphanumeric()).collect())).collect::<Vec<String>>())
        .collect();
    types.sort();
    types
}

/// Whether `line` holds `word` not as part of a longer identifier.
fn has_word(line: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    line.match_indices(word).any(|(i, _)| {
        let before = line[..i].chars().next_back().is_none_or(|c| !is_ident(c));
        let after = line[i + word.len()..].chars().next().is_none_or(|c| !is_ident(c));
        before && after
    })
}

#[test]
fn no_crate_but_models_knows_a_model() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for entry in fs::read_dir(&crates).unwrap() {
        let entry = entry.unwrap();
        let src = entry.path().join("src");
        if src.is_dir() && entry.file_name() != "models" {
            rust_files(&src, &mut files);
        }
    }
    assert!(files.len() > 20, "found only {} source files under {}", files.len(), crates.display());
    let types = model_types();
    assert!(types.len() >= MODEL_NAMES.len() - 1, "model types found: {types:?}");
    let names: Vec<String> = MODEL_NAMES.iter().map(|name| format!("\"{name}\"")).collect();
    let names_a_variant = |line: &str| line.match_indices("ModelSpec::").any(|(i, m)| line[i + m.len()..].starts_with(|c: char| c.is_ascii_uppercase()));
    let mut offences = Vec::new();
    for file in &files {
        for (number, line) in fs::read_to_string(file).unwrap().lines().enumerate() {
            let found = names.iter().filter(|w| line.contains(w.as_str())).cloned();
            let found = found.chain(types.iter().filter(|t| has_word(line, t)).cloned());
            let found = found.chain(["as_any".to_owned()].into_iter().filter(|w| line.contains(w.as_str())));
            for word in found.chain(names_a_variant(line).then(|| "a ModelSpec variant".to_owned())) {
                offences.push(format!("{}:{}: {word}", file.display(), number + 1));
            }
        }
    }
    assert!(offences.is_empty(), "model knowledge outside crates/models (ask the model through ModelConfig):\n{}", offences.join("\n"));
}

#[test]
fn every_model_describes_itself() {
    for &name in MODEL_NAMES {
        let spec = ModelSpec::new(name, None).unwrap();
        assert_eq!(spec.name(), name);
        let card = spec.config().card();
        assert!(!card.paper.is_empty() && !card.summary.is_empty(), "{name} has no card");
        let recipe = spec.reference_recipe(Preset::LevirCd);
        assert!(recipe.lr > 0.0 && recipe.batch_size > 0, "{name}: {recipe:?}");
        // A checkpoint stores the configuration as JSON; it must read back as the same model.
        assert_eq!(ModelSpec::new(name, Some(spec.config_json())).unwrap(), spec);
    }
}

/// Builds `name` with `overrides` and runs a forward pass on `bands`-band dates.
fn logits_shape(name: &str, overrides: serde_json::Value, bands: i64, side: i64) -> Vec<i64> {
    tch::manual_seed(0);
    let model = LoadedModel::new(ModelSpec::new(name, Some(overrides)).unwrap(), Device::Cpu).unwrap();
    let x = Tensor::randn([1, bands, side, side], (Kind::Float, Device::Cpu));
    tch::no_grad(|| model.model.forward_t(&x, &x, false)).logits.size()
}

fn parameters(name: &str, overrides: serde_json::Value) -> usize {
    LoadedModel::new(ModelSpec::new(name, Some(overrides)).unwrap(), Device::Cpu).unwrap().parameter_count()
}

#[test]
fn configurations_change_what_is_built() {
    for name in ["fc-ef", "fc-siam-conc", "fc-siam-diff"] {
        let narrow = json!({"width": 8, "in_channels": 4, "num_classes": 3});
        assert_eq!(logits_shape(name, narrow.clone(), 4, 40), [1, 3, 40, 40], "{name}");
        assert!(parameters(name, narrow) < parameters(name, json!({})) / 3, "{name}: width 8 is not narrower");
    }
    let clearscd = json!({"num_classes": 5, "cvaps_blocks": 2, "decoder": {"pyramid_channels": 64, "segmentation_channels": 32}});
    let model = LoadedModel::new(ModelSpec::new("clearscd", Some(clearscd.clone())).unwrap(), Device::Cpu).unwrap();
    let x = Tensor::randn([1, 3, 64, 64], (Kind::Float, Device::Cpu));
    let out = tch::no_grad(|| model.model.forward_t(&x, &x, false));
    assert_eq!(out.logits.size(), [1, 2, 64, 64]);
    assert_eq!(out.semantic.as_ref().unwrap()[0].size(), [1, 5, 64, 64]);
    assert!(model.parameter_count() < parameters("clearscd", json!({})));
}

/// ChangeCLIP at half its decoder width, on tiny CLIP towers (the golden's sizes).
#[test]
fn changeclip_builds_at_another_width() {
    let tiny = tiny_changeclip();
    let mut narrow = tiny.clone();
    narrow["width"] = json!(128);
    assert_eq!(logits_shape("changeclip-rn50", narrow.clone(), 3, 64), [1, 2, 64, 64]);
    assert!(parameters("changeclip-rn50", narrow) < parameters("changeclip-rn50", tiny));
    let err = ModelSpec::new("changeclip-rn50", Some(json!({"width": 100}))).unwrap().build(&tch::nn::VarStore::new(Device::Cpu).root()).err().unwrap();
    assert!(err.to_string().contains("multiple of 64"), "{err}");
}

/// A ChangeCLIP small enough to build and run in a test.
fn tiny_changeclip() -> serde_json::Value {
    json!({
        "vision": {"kind": "resnet", "layers": [1, 1, 1, 1], "width": 8, "output_dim": 64, "heads": 32, "positional_grid": 2},
        "text": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1, "embed_dim": 64},
        "context_decoder": {"width": 64, "heads": 4, "layers": 1, "visual_dim": 64, "dropout": 0.1},
    })
}

/// Every tensor element a built model holds, parameters and buffers.
fn elements_built(spec: &ModelSpec) -> u64 {
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let _model = spec.build(&vs.root()).unwrap();
    vs.variables().values().map(|t| t.numel() as u64).sum()
}

#[test]
fn size_estimates_are_near_what_is_built_and_oversized_configurations_are_refused() {
    for spec in MODEL_NAMES.iter().map(|name| ModelSpec::new(name, None).unwrap()) {
        let (estimate, built) = (spec.config().size_estimate(), elements_built(&spec));
        let ratio = estimate as f64 / built as f64;
        eprintln!("{}: estimate {estimate}, built {built}, ratio {ratio:.2}", spec.name());
        assert!((0.5..=2.0).contains(&ratio), "{}: estimate {estimate} vs {built} built", spec.name());
    }
    // Every field within its own range, the product far beyond memory: refused before building.
    let oversized = [
        ("fc-siam-diff", json!({"width": 512})),
        ("clearscd", json!({"num_classes": 254, "queue_len": 65536})),
        ("changeclip-vit", json!({"vision": {"width": 4096, "layers": 64}})),
    ];
    for (name, overrides) in oversized {
        let spec = ModelSpec::new(name, Some(overrides)).unwrap();
        let vs = tch::nn::VarStore::new(Device::Cpu);
        let err = spec.build(&vs.root()).err().unwrap_or_else(|| panic!("{name}: built")).to_string();
        assert!(err.contains("parameters and buffers"), "{name}: {err}");
        assert!(vs.variables().is_empty(), "{name}: allocated before refusing");
    }
}

/// Inference in channels-last memory (what `predict` and `eval` use on a CPU) gives every model's
/// outputs up to float rounding.
#[test]
fn channels_last_inference_equals_the_default_layout() {
    let small = [
        ("fc-ef", json!({"width": 8})),
        ("fc-siam-conc", json!({"width": 8})),
        ("fc-siam-diff", json!({"width": 8})),
        ("clearscd", json!({})),
        ("changeclip-rn50", tiny_changeclip()),
    ];
    for (name, overrides) in small {
        tch::manual_seed(0);
        let model = LoadedModel::new(ModelSpec::new(name, Some(overrides)).unwrap(), Device::Cpu).unwrap();
        let (a, b) = (Tensor::randn([1, 3, 64, 64], (Kind::Float, Device::Cpu)), Tensor::randn([1, 3, 64, 64], (Kind::Float, Device::Cpu)));
        let default = tch::no_grad(|| model.model.forward_t(&a, &b, false)).logits;
        model.prepare_for_inference();
        let moved = tch::no_grad(|| model.model.forward_t(&a, &b, false)).logits;
        let scale = default.abs().max().double_value(&[]).max(1e-6);
        let difference = (&default - &moved).abs().max().double_value(&[]) / scale;
        eprintln!("{name}: largest difference {difference:.2e} of the largest output");
        assert!(difference < 1e-4, "{name}: channels-last changed the outputs by {difference:.2e}");
    }
}
