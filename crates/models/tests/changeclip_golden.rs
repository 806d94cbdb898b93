//! ChangeCLIP equals the reference: the tiny golden checkpoint (`../shared/golden/clip/
//! changeclip_tiny.safetensors`: mmseg key names, real module structure, random weights) on the
//! stored real LEVIR pair reproduces every stored intermediate within the golden README's
//! tolerances: 1e-4 · max(1, max|golden|) for maps, 1e-5 absolute for score maps and logits.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use changedet_models::changeclip::{ChangeClip, Config};
use changedet_models::checkpoint::copy_into;
use changedet_models::clip::{ContextDecoderConfig, ResNetConfig, TextConfig, Tokenizer, VisionConfig};
use changedet_models::tensor_io;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/golden/clip").join(name)
}

/// The e2e config of the golden's manifest.
fn tiny_config() -> Config {
    Config {
        vision: VisionConfig::ResNet(ResNetConfig { layers: [1, 1, 1, 1], width: 8, output_dim: 64, heads: 32, positional_grid: 16 }),
        text: TextConfig { context_length: 77, vocab_size: 49408, width: 32, heads: 2, layers: 2, embed_dim: 64 },
        context_decoder: ContextDecoderConfig { width: 64, heads: 4, layers: 3, visual_dim: 64, dropout: 0.1 },
        ..Config::default()
    }
}

enum Tolerance {
    /// 1e-4 · max(1, max|golden|).
    Relative,
    Absolute(f64),
}

fn check(name: &str, ours: &Tensor, golden: &Tensor, tolerance: Tolerance) {
    // `*_crop` goldens are the top-right 16×16 corner of the map.
    let ours = if name.ends_with("_crop") {
        let w = ours.size()[3];
        ours.narrow(2, 0, 16).narrow(3, w - 16, 16)
    } else {
        ours.shallow_clone()
    };
    assert_eq!(ours.size(), golden.size(), "{name}: shape");
    let (ours, golden) = (ours.to_kind(Kind::Double), golden.to_kind(Kind::Double));
    let allowed = match tolerance {
        Tolerance::Relative => 1e-4 * golden.abs().max().double_value(&[]).max(1.0),
        Tolerance::Absolute(a) => a,
    };
    let error = (&ours - &golden).abs().max().double_value(&[]);
    eprintln!("{name}: max abs error {error:.2e} (allowed {allowed:.1e})");
    assert!(error <= allowed, "{name}: max abs error {error:e} > {allowed:e}");
}

#[test]
fn tiny_changeclip_matches_the_reference_forward() {
    let path = golden("changeclip_tiny.safetensors");
    let mut state = tensor_io::read(&path).unwrap().tensors;
    assert_eq!(state.len(), 448);
    state.retain(|k, _| !k.ends_with("num_batches_tracked"));
    let mut vs = VarStore::new(Device::Cpu);
    let model = ChangeClip::new(&vs.root(), &tiny_config()).unwrap();
    copy_into(&mut vs, &state, &path, "changeclip").unwrap();

    let io: BTreeMap<String, Tensor> = tensor_io::read(&golden("changeclip_tiny_io.safetensors")).unwrap().tensors;
    let g = |name: &str| io.get(name).unwrap_or_else(|| panic!("golden {name} missing"));

    // The prompts: A's class list for both dates (the reference's inference path).
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(golden("manifest.json")).unwrap()).unwrap();
    let class_list = |prompt: &str| -> Vec<String> { prompt.split(", ").skip(1).map(String::from).collect() };
    let a_prompts = manifest["e2e_prompts"]["A"].as_array().unwrap();
    let classes_a = class_list(a_prompts[1].as_str().unwrap());
    assert_eq!(classes_a.len(), 9);
    let tokenizer = Tokenizer::from_file(&golden("bpe_simple_vocab_16e6.txt.gz")).unwrap();
    let tokens = model.prompt_tokens(&tokenizer, &[classes_a]);
    assert!(tokens.equal(g("tokensA")) && tokens.equal(g("tokensB")));

    let input = g("input");
    let (before, after) = (input.narrow(1, 0, 3), input.narrow(1, 3, 3));
    let out = tch::no_grad(|| model.forward_detailed_t(&before, &after, &tokens, &tokens, false));

    use Tolerance::{Absolute, Relative};
    for (date, features) in [("A", &out.before), ("B", &out.after)] {
        for (i, level) in features.image.levels.iter().enumerate() {
            check(&format!("backbone{date}_layer{}", i + 1), level, g(&format!("backbone{date}_layer{}", i + 1)), Relative);
        }
        check(&format!("backbone{date}_global"), &features.image.global, g(&format!("backbone{date}_global")), Relative);
        check(&format!("backbone{date}_dense"), &features.image.dense, g(&format!("backbone{date}_dense")), Relative);
        check(&format!("text_raw{date}"), &features.text_raw, g(&format!("text_raw{date}")), Relative);
        check(&format!("text_diff{date}"), &features.text_diff, g(&format!("text_diff{date}")), Relative);
        check(&format!("text_emb{date}"), &features.text, g(&format!("text_emb{date}")), Relative);
        check(&format!("score_map{date}"), &features.score_map, g(&format!("score_map{date}")), Absolute(1e-5));
    }
    for i in 0..4 {
        let crop = |name: &str| if io.contains_key(&format!("{name}{i}")) { format!("{name}{i}") } else { format!("{name}{i}_crop") };
        check(&crop("fpn_out"), &out.fpn[i], g(&crop("fpn_out")), Relative);
        check(&format!("dfc_weight{i}"), &out.dfc_weights[i], g(&format!("dfc_weight{i}")), Relative);
        check(&crop("minus_out"), &out.minus[i], g(&crop("minus_out")), Relative);
        check(&crop("dfc_out"), &out.dfc[i], g(&crop("dfc_out")), Relative);
    }
    check("dec_text_tokens", &out.decoder.text_tokens, g("dec_text_tokens"), Relative);
    for (i, (stage, swin)) in out.decoder.stages.iter().zip(&out.decoder.swin).enumerate() {
        let suffix = if i == 2 { "_crop" } else { "" };
        check(&format!("dec{}_out{suffix}", i + 1), stage, g(&format!("dec{}_out{suffix}", i + 1)), Relative);
        check(&format!("dec{}_swin_out{suffix}", i + 1), swin, g(&format!("dec{}_swin_out{suffix}", i + 1)), Relative);
    }
    check("head_logits", &out.decoder.logits, g("head_logits"), Absolute(1e-5));
    check("seg_logits", &out.logits, g("seg_logits"), Absolute(1e-5));
}

/// A CLIP checkpoint in OpenAI's layout from the golden towers (the same weights the ChangeCLIP
/// golden holds under `backbone.`/`text_encoder.`), its attention-pool grid optionally replaced.
fn clip_checkpoint(dir: &Path, positional: Option<Tensor>) -> PathBuf {
    let mut tensors = tensor_io::read(&golden("clip_rn_tiny.safetensors")).unwrap().tensors;
    tensors.extend(tensor_io::read(&golden("clip_text_tiny.safetensors")).unwrap().tensors);
    if let Some(p) = positional {
        tensors.insert("visual.attnpool.positional_embedding".into(), p);
    }
    let path = dir.join("clip.safetensors");
    tensor_io::write(&path, tensors.iter().map(|(k, t)| (k.clone(), t)), Default::default()).unwrap();
    path
}

#[test]
fn clip_towers_start_changeclip_as_the_reference_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut vs = VarStore::new(Device::Cpu);
    let _model = ChangeClip::new(&vs.root(), &tiny_config()).unwrap();
    let copied = changedet_models::changeclip::load_clip_towers(&mut vs, &clip_checkpoint(dir.path(), None)).unwrap();
    let reference = tensor_io::read(&golden("changeclip_tiny.safetensors")).unwrap().tensors;
    let variables = vs.variables();
    let towers: Vec<&String> = variables.keys().filter(|k| k.starts_with("backbone.") || k.starts_with("text_encoder.")).collect();
    assert_eq!(copied, towers.len());
    for key in towers {
        assert!(variables[key].equal(&reference[key]), "{key}");
    }
    assert!(!variables["contexts2"].equal(&reference["contexts2"]), "the rest keeps its initialisation");

    // OpenAI's RN50 stores a 7×7 grid; it is resized once to the configured 16×16, class row kept.
    let grid16 = &reference["backbone.attnpool.positional_embedding"];
    let grid7 = changedet_models::clip::transformer::resize_positional_grid(grid16, 7, 7);
    assert_eq!(grid7.size(), [50, 256]);
    changedet_models::changeclip::load_clip_towers(&mut vs, &clip_checkpoint(dir.path(), Some(grid7.shallow_clone()))).unwrap();
    let loaded = &vs.variables()["backbone.attnpool.positional_embedding"];
    assert_eq!(loaded.size(), [257, 256]);
    assert!(loaded.get(0).equal(&grid7.get(0)));
    assert!(loaded.equal(&changedet_models::clip::transformer::resize_positional_grid(&grid7, 16, 16)));

    // A ViT's towers do not fit the ResNet variant.
    let mut vit = tensor_io::read(&golden("clip_vit_tiny.safetensors")).unwrap().tensors;
    vit.extend(tensor_io::read(&golden("clip_text_tiny.safetensors")).unwrap().tensors);
    let path = dir.path().join("vit.safetensors");
    tensor_io::write(&path, vit.iter().map(|(k, t)| (k.clone(), t)), Default::default()).unwrap();
    let err = changedet_models::changeclip::load_clip_towers(&mut vs, &path).unwrap_err().to_string();
    assert!(err.contains("visual.") && err.contains("vit.safetensors"), "{err}");
}

/// The tiny golden checkpoint in a model (the VarStore holds its weights).
fn tiny_golden_model() -> (VarStore, ChangeClip) {
    let path = golden("changeclip_tiny.safetensors");
    let mut state = tensor_io::read(&path).unwrap().tensors;
    state.retain(|k, _| !k.ends_with("num_batches_tracked"));
    let mut vs = VarStore::new(Device::Cpu);
    let model = ChangeClip::new(&vs.root(), &tiny_config()).unwrap();
    copy_into(&mut vs, &state, &path, "changeclip").unwrap();
    (vs, model)
}

/// The text tower runs once per distinct prompt pair of a batch (`prompt_embeddings_t`): each
/// image must still get its own prompts' embeddings. A batch whose two images and two dates mix
/// three class lists gives, image by image, what each image gives alone.
#[test]
fn shared_prompts_are_encoded_once_and_each_image_keeps_its_own() {
    let (_vs, model) = tiny_golden_model();
    let tokenizer = Tokenizer::from_file(&golden("bpe_simple_vocab_16e6.txt.gz")).unwrap();
    let lists = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let (roads, trees, water) = (lists(&["road", "building"]), lists(&["tree"]), lists(&["water", "boat"]));
    let before_lists = [roads.clone(), trees.clone()];
    let after_lists = [water.clone(), roads.clone()];
    let io: BTreeMap<String, Tensor> = tensor_io::read(&golden("changeclip_tiny_io.safetensors")).unwrap().tensors;
    let input = io["input"].repeat([2, 1, 1, 1]);
    let (before, after) = (input.narrow(1, 0, 3), input.narrow(1, 3, 3) * 0.5);
    let batch = tch::no_grad(|| {
        model.forward_detailed_t(&before, &after, &model.prompt_tokens(&tokenizer, &before_lists), &model.prompt_tokens(&tokenizer, &after_lists), false)
    });
    for i in 0..2 {
        let alone = tch::no_grad(|| {
            let (b, a) = (before.narrow(0, i, 1), after.narrow(0, i, 1));
            let tokens = |list: &Vec<String>| model.prompt_tokens(&tokenizer, std::slice::from_ref(list));
            model.forward_detailed_t(&b, &a, &tokens(&before_lists[i as usize]), &tokens(&after_lists[i as usize]), false)
        });
        check(&format!("text_raw A, image {i}"), &batch.before.text_raw.narrow(0, i, 1), &alone.before.text_raw, Tolerance::Relative);
        check(&format!("text_raw B, image {i}"), &batch.after.text_raw.narrow(0, i, 1), &alone.after.text_raw, Tolerance::Relative);
        check(&format!("logits, image {i}"), &batch.logits.narrow(0, i, 1), &alone.logits, Tolerance::Absolute(1e-5));
    }
    // The three class lists give three different embeddings.
    let raw = |f: &changedet_models::changeclip::ChangeClipForward, date: usize, i: i64| if date == 0 { f.before.text_raw.get(i) } else { f.after.text_raw.get(i) };
    assert!((raw(&batch, 0, 0) - raw(&batch, 1, 0)).abs().max().double_value(&[]) > 1e-4);
    assert!((raw(&batch, 0, 0) - raw(&batch, 0, 1)).abs().max().double_value(&[]) > 1e-4);
    assert!((raw(&batch, 0, 0) - raw(&batch, 1, 1)).abs().max().double_value(&[]) < 1e-6, "the same list, the same embedding");
}

/// Once frozen for inference, the model keeps the text embeddings of the prompt pairs it has
/// seen; every forward pass still equals the unfrozen one, whichever prompts come in which order.
#[test]
fn frozen_text_embeddings_are_the_ones_each_prompt_gives() {
    use changedet_models::ChangeModel;
    let (_vs, model) = tiny_golden_model();
    let io: BTreeMap<String, Tensor> = tensor_io::read(&golden("changeclip_tiny_io.safetensors")).unwrap().tensors;
    let (before, after) = (io["input"].narrow(1, 0, 3), io["input"].narrow(1, 3, 3));
    let prompts: Vec<[Vec<String>; 2]> = vec![
        [vec!["road".into()], vec!["road".into()]],
        [vec!["water".into(), "boat".into()], vec!["tree".into()]],
        [vec![], vec![]],
    ];
    let run = |classes: &[Vec<String>; 2]| tch::no_grad(|| model.forward_with_classes_t(&before, &after, std::slice::from_ref(classes), false).logits);
    let unfrozen: Vec<Tensor> = prompts.iter().map(run).collect();
    // Freezing changes only float32 rounding: batch norm folded into each convolution's weights
    // (one more rounding per weight) and text embeddings computed once and reused, so the
    // difference scales with the logits (|logits| ≤ 0.76 here). Measured over libtorch's
    // default, AVX2 and AVX-512 kernels at 1 and 2 threads on two 2-core AMD EPYC machines:
    // 0.69e-6 to 1.15e-6, i.e. at most 13 float32 epsilons of the largest logit. The bound
    // allows 32 (2.9e-6), far below what a wrong cached embedding gives (the prompts' own
    // difference, checked below to exceed ten times the bound).
    let largest = unfrozen.iter().map(|l| l.abs().max().double_value(&[])).fold(0.0, f64::max);
    let allowed = 32.0 * f64::from(f32::EPSILON) * largest;
    model.freeze_for_inference();
    for round in 0..2 {
        for (classes, expected) in prompts.iter().zip(&unfrozen) {
            check(&format!("logits, round {round}, {classes:?}"), &run(classes), expected, Tolerance::Absolute(allowed));
        }
    }
    let prompts_differ = (&unfrozen[0] - &unfrozen[1]).abs().max().double_value(&[]);
    assert!(prompts_differ > 10.0 * allowed, "the prompts must matter: {prompts_differ:e}");
}
