//! CLIP checkpoints load from every layout and fail loudly: OpenAI's TorchScript archives (read
//! without executing anything), Hugging Face names, ChangeCLIP's mmseg names; missing, surplus
//! and mis-shaped tensors are errors naming the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use changedet_models::clip::{Clip, ClipStateDict, Layout, ResNetConfig, VisionConfig};
use changedet_models::pth::PthFile;
use changedet_models::{ModelError, tensor_io};
use tch::{Device, Kind, Tensor};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/golden/clip").join(name)
}

/// What `torch.jit.load(...).float().state_dict()` gave for the TorchScript fixture.
fn torchscript_reference() -> BTreeMap<String, Tensor> {
    tensor_io::read(&fixture("tiny_clip_torchscript_state.safetensors")).unwrap().tensors
}

fn write_safetensors(dir: &Path, name: &str, tensors: &BTreeMap<String, Tensor>) -> PathBuf {
    let path = dir.join(name);
    tensor_io::write(&path, tensors.iter().map(|(k, t)| (k.clone(), t)), Default::default()).unwrap();
    path
}

#[test]
fn torchscript_archive_reads_like_torch_jit_load() {
    // OpenAI ships fp16 TorchScript (`RN50.pt`, `ViT-B-16.pt`); the fixture is built the same way
    // by scripts/fixtures/torchscript_clip.py.
    let archive = fixture("tiny_clip_torchscript.pt");
    let ours: BTreeMap<String, Tensor> = PthFile::open(&archive).unwrap().state_dict().unwrap().into_iter().collect();
    let reference = torchscript_reference();
    assert_eq!(ours.keys().collect::<Vec<_>>(), reference.keys().collect::<Vec<_>>());
    for (key, t) in &reference {
        assert!(ours[key].to_kind(t.kind()).equal(t), "{key} differs");
    }

    let (clip, skipped) = Clip::load(&archive, Device::Cpu).unwrap();
    let skipped: Vec<&str> = skipped.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(skipped, ["context_length", "input_resolution", "vocab_size"]);
    let VisionConfig::Vit(vit) = &clip.vision_config else { panic!("a ViT") };
    assert_eq!((vit.patch_size, vit.width, vit.layers, vit.positional_grid, vit.output_dim), (16, 16, 1, 2, 8));
    assert!(!vit.multi_scale_necks && !vit.class_embedding_twice, "plain OpenAI CLIP");
    assert_eq!((clip.text.config.vocab_size, clip.text.config.width, clip.text.config.embed_dim), (64, 16, 8));
    let variables = clip.vs.variables();
    for (key, t) in &reference {
        if let Some(var) = variables.get(key) {
            assert!(var.equal(t), "{key} not loaded");
        }
    }
}

/// OpenAI names → Hugging Face `CLIPModel` names (what transformers' conversion script writes).
fn to_hugging_face(openai: &BTreeMap<String, Tensor>) -> BTreeMap<String, Tensor> {
    let mut hf = BTreeMap::new();
    for (key, t) in openai {
        let t = t.shallow_clone();
        let (tower, rest) = match key.strip_prefix("visual.") {
            Some(rest) => ("vision_model", rest),
            None => ("text_model", key.as_str()),
        };
        let simple = match (tower, rest) {
            (_, "logit_scale") => Some("logit_scale".to_owned()),
            ("vision_model", "class_embedding") => Some("vision_model.embeddings.class_embedding".into()),
            ("vision_model", "conv1.weight") => Some("vision_model.embeddings.patch_embedding.weight".into()),
            ("vision_model", "positional_embedding") => Some("vision_model.embeddings.position_embedding.weight".into()),
            ("vision_model", "ln_pre.weight") => Some("vision_model.pre_layrnorm.weight".into()),
            ("vision_model", "ln_pre.bias") => Some("vision_model.pre_layrnorm.bias".into()),
            ("vision_model", "ln_post.weight") => Some("vision_model.post_layernorm.weight".into()),
            ("vision_model", "ln_post.bias") => Some("vision_model.post_layernorm.bias".into()),
            ("text_model", "token_embedding.weight") => Some("text_model.embeddings.token_embedding.weight".into()),
            ("text_model", "positional_embedding") => Some("text_model.embeddings.position_embedding.weight".into()),
            ("text_model", "ln_final.weight") => Some("text_model.final_layer_norm.weight".into()),
            ("text_model", "ln_final.bias") => Some("text_model.final_layer_norm.bias".into()),
            _ => None,
        };
        if let Some(name) = simple {
            hf.insert(name, t);
            continue;
        }
        match (tower, rest) {
            ("vision_model", "proj") => drop(hf.insert("visual_projection.weight".into(), t.transpose(0, 1).contiguous())),
            ("text_model", "text_projection") => drop(hf.insert("text_projection.weight".into(), t.transpose(0, 1).contiguous())),
            (_, "input_resolution" | "context_length" | "vocab_size") => {}
            _ => {
                let (index, inner) = rest.strip_prefix("transformer.resblocks.").unwrap().split_once('.').unwrap();
                let layer = format!("{tower}.encoder.layers.{index}");
                match inner {
                    "attn.in_proj_weight" | "attn.in_proj_bias" => {
                        let suffix = if inner.ends_with("weight") { "weight" } else { "bias" };
                        for (part, name) in t.chunk(3, 0).into_iter().zip(["q", "k", "v"]) {
                            hf.insert(format!("{layer}.self_attn.{name}_proj.{suffix}"), part.contiguous());
                        }
                    }
                    _ => {
                        let name = inner
                            .replace("attn.out_proj", "self_attn.out_proj")
                            .replace("ln_1", "layer_norm1")
                            .replace("ln_2", "layer_norm2")
                            .replace("mlp.c_fc", "mlp.fc1")
                            .replace("mlp.c_proj", "mlp.fc2");
                        hf.insert(format!("{layer}.{name}"), t);
                    }
                }
            }
        }
    }
    hf.insert("vision_model.embeddings.position_ids".into(), Tensor::arange(5, (Kind::Int64, Device::Cpu)).unsqueeze(0));
    hf
}

#[test]
fn hugging_face_layout_loads_the_same_weights() {
    let openai = torchscript_reference();
    let dir = tempfile::tempdir().unwrap();
    let path = write_safetensors(dir.path(), "model.safetensors", &to_hugging_face(&openai));
    let (clip, skipped) = Clip::load(&path, Device::Cpu).unwrap();
    assert_eq!(skipped.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["vision_model.embeddings.position_ids"]);
    let variables = clip.vs.variables();
    assert_eq!(variables.len(), openai.len() - 3, "every variable but the three TorchScript constants");
    for (key, var) in &variables {
        assert!(var.equal(&openai[key]), "{key} differs after the Hugging Face round trip");
    }
    // A q/k/v triple with a piece missing names the Hugging Face key.
    let mut broken = to_hugging_face(&openai);
    broken.remove("text_model.encoder.layers.0.self_attn.k_proj.bias");
    let path = write_safetensors(dir.path(), "broken.safetensors", &broken);
    let err = Clip::load(&path, Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("text_model.encoder.layers.0.self_attn.k_proj.bias"), "{err}");
}

#[test]
fn changeclip_checkpoint_towers_are_clips() {
    // The tiny ChangeCLIP golden's backbone/text encoder are the CLIP goldens' weights.
    let path = golden("changeclip_tiny.safetensors");
    let state = ClipStateDict::new(tensor_io::read(&path).unwrap().tensors, &path).unwrap();
    assert_eq!(state.layout, Layout::ChangeClip);
    assert!(state.skipped.iter().any(|(k, _)| k == "gamma") && state.skipped.iter().any(|(k, _)| k.starts_with("decode_head.")));
    let config = state.vision_config(&path).unwrap();
    assert_eq!(config, VisionConfig::ResNet(ResNetConfig { layers: [1, 1, 1, 1], width: 8, output_dim: 64, heads: 32, positional_grid: 16 }));
    let rn_path = golden("clip_rn_tiny.safetensors");
    let rn = ClipStateDict::new(tensor_io::read(&rn_path).unwrap().tensors, &rn_path).unwrap();
    let (ours, theirs) = (state.tower(true), rn.tower(true));
    assert_eq!(ours.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>());
    assert!(ours.iter().all(|(k, t)| t.equal(&theirs[k])));
}

fn load_error(tensors: &BTreeMap<String, Tensor>) -> ModelError {
    let dir = tempfile::tempdir().unwrap();
    let path = write_safetensors(dir.path(), "clip.safetensors", tensors);
    Clip::load(&path, Device::Cpu).err().expect("must be refused")
}

#[test]
fn missing_surplus_and_misshaped_keys_are_named() {
    let good = torchscript_reference;

    let mut missing = good();
    missing.remove("visual.ln_post.weight");
    assert!(matches!(load_error(&missing), ModelError::MissingKey { key, .. } if key == "visual.ln_post.weight"));

    let mut surplus = good();
    surplus.insert("visual.extra_head.weight".into(), Tensor::zeros([2], (Kind::Float, Device::Cpu)));
    assert!(matches!(load_error(&surplus), ModelError::UnexpectedKey { key, .. } if key == "visual.extra_head.weight"));

    let mut misshaped = good();
    misshaped.insert("transformer.resblocks.0.mlp.c_fc.bias".into(), Tensor::zeros([7], (Kind::Float, Device::Cpu)));
    let err = load_error(&misshaped);
    assert!(matches!(&err, ModelError::ShapeMismatch { key, .. } if key == "transformer.resblocks.0.mlp.c_fc.bias"), "{err}");
    assert!(err.to_string().contains("[7]") && err.to_string().contains("[64]"), "{err}");

    let mut no_text = good();
    no_text.retain(|k, _| k.starts_with("visual."));
    assert!(load_error(&no_text).to_string().contains("token_embedding.weight"));
}

#[test]
fn a_torchscript_archive_that_calls_code_is_refused() {
    use std::io::Write;
    // A module object whose pickle also calls builtins.exec: refused before anything runs.
    let pickle = b"\x80\x02c__torch__\nCLIP\n)\x81}(X\x01\x00\x00\x00xcbuiltins\nexec\nX\x04\x00\x00\x00pass\x85Rub.";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("evil.pt");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    zip.start_file("evil/data.pkl", zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(pickle).unwrap();
    zip.finish().unwrap();
    let err = Clip::load(&path, Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("refused") && err.contains("builtins.exec") && err.contains("evil.pt"), "{err}");
}
