//! ClearSCD's losses and gradients equal the reference's (../shared/golden/clearscd/losses.safetensors):
//! the official checkpoint on the two stored LEVIR pairs with the stored synthetic labels, in eval
//! mode and in train mode (batch statistics; dropout and drop-connect off), with SACL's random
//! pixel orders replayed from the 54 recorded permutations. Tolerances from the golden README.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

use changedet_data::Normalization;
use changedet_models::clearscd::{ClearScd, Config};
use changedet_models::input::normalise_pixels;
use changedet_models::{ModelSpec, import, tensor_io};
use changedet_models::clearscd_loss::{self, Permutations, ScdLabels, clearscd_losses, downsample_labels};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/golden/clearscd").join(name)
}

struct Replay(VecDeque<Tensor>);

impl Permutations for Replay {
    fn permutation(&mut self, n: i64, _: Device) -> Tensor {
        let p = self.0.pop_front().expect("more permutations drawn than the reference drew");
        assert_eq!(p.size(), [n], "permutation drawn over a different pixel count than the reference's");
        p
    }
}

fn load(cfg: &Config) -> (VarStore, ClearScd) {
    let path = golden("weights.pth");
    let mut vs = VarStore::new(Device::Cpu);
    let model = ClearScd::new(&vs.root(), cfg);
    let state_dict = import::read_state_dict(&path).unwrap();
    import::import_into(&mut vs, &ModelSpec::ClearScd(cfg.clone()), state_dict, &path).unwrap();
    (vs, model)
}


fn check_mode(mode: &str, train: bool, golden_tensors: &BTreeMap<String, Tensor>, inputs: &(Tensor, Tensor)) {
    let get = |name: &str| golden_tensors.get(name).unwrap_or_else(|| panic!("{name} missing"));
    let mut cfg = Config::default();
    if train {
        // The golden's train mode switched its two random layers off.
        cfg.decoder.dropout = 0.0;
        cfg.encoder.drop_connect_rate = 0.0;
    }
    let (vs, model) = load(&cfg);
    let label = |name: &str| get(name).to_kind(Kind::Int64);
    let (label_a, label_b, label_bcd) = (label("label_A"), label("label_B"), label("label_BCD"));
    assert!(downsample_labels(&label_a, 4).equal(&label("label_A_down")));
    assert!(downsample_labels(&label_b, 4).equal(&label("label_B_down")));

    let mut permutations: Vec<(&String, &Tensor)> = golden_tensors.iter().filter(|(k, _)| k.starts_with("sacl_perm.")).collect();
    permutations.sort_by_key(|(k, _)| k.to_string());
    let mut replay = Replay(permutations.into_iter().map(|(_, t)| t.shallow_clone()).collect());

    let out = model.forward_scd(&inputs.0, &inputs.1, train);
    let labels = ScdLabels { semantic: [&label_a, &label_b], change: &label_bcd };
    let losses = clearscd_losses(&model, &out, &labels, &clearscd_loss::Config::default(), false, train, &mut replay);
    assert!(replay.0.is_empty(), "{} recorded permutations left unused", replay.0.len());

    let bscc_weight = clearscd_loss::Config::default().bscc_weight;
    let deterministic = &losses.bce + &losses.dice + &losses.ce[0] + &losses.ce[1] + &losses.bscc;
    let total = losses.total();
    let terms: Vec<(&str, Tensor)> = vec![
        ("ce_A", losses.ce[0].shallow_clone()),
        ("ce_B", losses.ce[1].shallow_clone()),
        ("bce", losses.bce.shallow_clone()),
        ("dice", losses.dice.shallow_clone()),
        ("bcd", &losses.bce + &losses.dice),
        ("bscc", losses.bscc.shallow_clone()),
        ("bscc_unweighted", &losses.bscc / bscc_weight),
        ("sacl_local", losses.sacl_local.shallow_clone()),
        ("sacl_global", losses.sacl_global.shallow_clone()),
        ("sacl", losses.sacl()),
        ("total_deterministic", deterministic.shallow_clone()),
        ("total", total.shallow_clone()),
    ];
    for (term, ours) in &terms {
        let ours = ours.double_value(&[]);
        let theirs = get(&format!("{mode}.loss.{term}")).double_value(&[0]);
        eprintln!("{mode}.{term}: ours {ours:.7} reference {theirs:.7}");
        assert!((ours - theirs).abs() <= 1e-5 + 1e-5 * theirs.abs(), "{mode}.loss.{term}: {ours} vs {theirs}");
    }

    let variables = vs.variables();
    let prefix = format!("{mode}.grad_total.");
    let names: Vec<String> = golden_tensors.keys().filter_map(|k| k.strip_prefix(&prefix).map(str::to_owned)).collect();
    assert_eq!(names.len(), 17);
    let params: Vec<Tensor> = names.iter().map(|n| variables[n].shallow_clone()).collect();
    let grads_deterministic = Tensor::run_backward(&[&deterministic], &params, true, false);
    let grads_total = Tensor::run_backward(&[&total], &params, false, false);
    let mut outside = Vec::new();
    for (kind, grads) in [("grad_total_deterministic", &grads_deterministic), ("grad_total", &grads_total)] {
        for (name, ours) in names.iter().zip(grads) {
            let theirs = &get(&format!("{mode}.{kind}.{name}")).to_kind(Kind::Double);
            // A parameter the loss does not reach has no gradient (PyTorch stores zeros).
            let ours = if ours.defined() { ours.to_kind(Kind::Double) } else { theirs.zeros_like() };
            let scale = theirs.abs().max().double_value(&[]);
            let error = (&ours - theirs).abs().max().double_value(&[]);
            // Relative to the largest gradient entry: heads 1e-4, decoder 1e-3, encoder 1e-2 (the
            // README's). The projection head's first conv is held like the encoder: its gradient
            // is a sum over all 8192 pixels that cancels to ~1e-3 of its terms, and running this
            // very test in f64 (model, inputs and losses) puts the reference's f32 value 2.4e-3
            // (train mode) away from the exact one; the other heads stay below 7e-6.
            // `decoder.p5.weight` (the 1×1 conv on the deepest encoder map) is held like the
            // encoder too: the golden README measured its f32 gradient 1.8e-3 (relative) away
            // from the f64 one in eval mode, above the decoder's 1e-3, and on an AMD EPYC machine
            // (oneDNN picks other kernels than on the machines this passed on) ours lands 3.4e-3
            // from the reference in train mode (1.1e-4 of max |grad| 3.2e-2), while every other
            // decoder gradient stays within 1e-3.
            // The BCD head's first block (`head_bcd.convs.0.*`) is held like the encoder too: its
            // train-mode gradient passes a ReLU and BSCC's hard mask round(t) on pre-activations
            // near zero (the golden README: smallest |BCD logit| 5.6e-6), so a kernel that rounds
            // one of them the other way moves it by a step. Measured relative errors: 4e-6 under
            // libtorch's AVX2 and AVX-512 kernels, 7.0e-4 and 7.6e-4 under its portable ones
            // (ATEN_CPU_CAPABILITY=default, 1 and 2 threads), against the heads' 1e-4; the
            // head's last conv and head_seg stay below 3e-5 on all three.
            let tolerance = if name.starts_with("encoder.") || name.starts_with("head_bcd.convs.0.") || name == "proj_head.proj.0.weight" || name == "decoder.p5.weight" {
                1e-2
            } else if name.starts_with("decoder.") {
                1e-3
            } else {
                1e-4
            };
            eprintln!("{mode}.{kind}.{name}: max error {error:.3e} of max |grad| {scale:.3e} ({:.1e} relative)", error / scale.max(f64::MIN_POSITIVE));
            if scale == 0.0 {
                assert_eq!(error, 0.0, "{name}: the reference gradient is exactly zero");
            } else if error > tolerance * scale {
                outside.push(format!("{mode}.{kind}.{name}: error {error:e} > {tolerance:e} × {scale:e}"));
            }
        }
    }
    assert!(outside.is_empty(), "gradients outside their tolerance:\n{}", outside.join("\n"));
}

#[test]
fn losses_and_gradients_equal_the_reference() {
    tch::set_num_threads(2);
    let golden_tensors = tensor_io::read(&golden("losses.safetensors")).unwrap().tensors;
    let forward = tensor_io::read(&golden("forward.safetensors")).unwrap().tensors;
    let norm = Normalization::IMAGENET;
    let inputs = (normalise_pixels(&forward["input.imgs_A_u8"], &norm), normalise_pixels(&forward["input.imgs_B_u8"], &norm));
    check_mode("eval", false, &golden_tensors, &inputs);
    check_mode("train", true, &golden_tensors, &inputs);
}
