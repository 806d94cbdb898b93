//! Full-size ChangeCLIP builds from its default configs with the reference's parameter counts
//! (`reference/changeclip.md` §1.10, derived from the module definitions).

use changedet_models::changeclip::{ChangeClip, Config};
use tch::Device;
use tch::nn::VarStore;

/// Trainable parameters per top-level part (buffers such as running means and Swin's relative
/// position index are not parameters).
fn parameters(config: &Config) -> (i64, std::collections::BTreeMap<String, i64>) {
    let vs = VarStore::new(Device::Cpu);
    let _model = ChangeClip::new(&vs.root(), config).unwrap();
    let mut parts = std::collections::BTreeMap::new();
    for (name, t) in vs.variables() {
        if !t.requires_grad() {
            continue;
        }
        let part = match name.split('.').next().unwrap() {
            "contexts2" | "gamma" | "minus_conv" | "channel_att" => "prompt+dfc",
            other => other,
        };
        *parts.entry(part.to_owned()).or_insert(0) += t.numel() as i64;
    }
    (parts.values().sum(), parts)
}

fn millions(n: i64) -> f64 {
    (n as f64 / 1e4).round() / 100.0
}

#[test]
fn full_size_models_have_the_reference_parameter_counts() {
    let (rn50, parts) = parameters(&Config::default());
    eprintln!("RN50 variant: {} M {:?}", millions(rn50), parts.iter().map(|(k, v)| (k, millions(*v))).collect::<Vec<_>>());
    // §1.10: image encoder 38.74 M, text encoder 63.69 M, context decoder 3.95 M, prompt + DFC
    // 2.08 M, FPN 4.33 M, decoder 4.75 M; total ≈ 117.5 M.
    for (part, expected) in [("backbone", 38.74), ("text_encoder", 63.69), ("context_decoder", 3.95), ("prompt+dfc", 2.08), ("neck", 4.33), ("decode_head", 4.75)] {
        assert!((millions(parts[part]) - expected).abs() <= 0.011, "RN50 {part}: {} M, reference {expected} M", millions(parts[part]));
    }
    assert!((millions(rn50) - 117.5).abs() < 0.06, "RN50 total {} M", millions(rn50));

    let (vit, parts) = parameters(&Config::vit_b16());
    eprintln!("ViT-B/16 variant: {} M {:?}", millions(vit), parts.iter().map(|(k, v)| (k, millions(*v))).collect::<Vec<_>>());
    // §1.10: image encoder 86.24 + 7.09 M, text 63.43 M, context decoder 3.55 M, prompt + DFC
    // 1.88 M, FPN 3.94 M, decoder 4.62 M; total ≈ 170.7 M.
    for (part, expected) in [("backbone", 86.24 + 7.09), ("text_encoder", 63.43), ("context_decoder", 3.55), ("prompt+dfc", 1.88), ("neck", 3.94), ("decode_head", 4.62)] {
        assert!((millions(parts[part]) - expected).abs() <= 0.011, "ViT {part}: {} M, reference {expected} M", millions(parts[part]));
    }
    assert!((millions(vit) - 170.7).abs() < 0.06, "ViT total {} M", millions(vit));
}

/// `t`'s standard deviation within 10 % of `expected`, and its mean near 0.
fn assert_spread(name: &str, t: &tch::Tensor, expected: f64) {
    let (std, mean) = (t.std(true).double_value(&[]), t.mean(tch::Kind::Float).double_value(&[]));
    assert!((std / expected - 1.0).abs() < 0.1 && mean.abs() < 0.2 * expected, "{name}: std {std}, mean {mean}, expected std {expected}");
}

/// The parts trained from scratch start as the reference's (mmseg/mmengine `init_weights`,
/// `reference/changeclip.md` §1.5–1.7): FPN neck Xavier-uniform, DFC and SE ConvModules
/// Kaiming-normal over fan_out, the decoder's own layers PyTorch's defaults, `conv_seg`
/// Normal(0.01), the context decoder's linear layers Normal(0.02), biases of all but the
/// PyTorch-default layers 0, and the learned context truncated at ±2.
#[test]
fn layers_trained_from_scratch_start_as_the_reference_initialises_them() {
    let vs = VarStore::new(Device::Cpu);
    let _model = ChangeClip::new(&vs.root(), &Config::default()).unwrap();
    let variables = vs.variables();
    for (name, t) in &variables {
        let size = t.size();
        let zero_bias = || assert_eq!(t.abs().max().double_value(&[]), 0.0, "{name}: bias not 0");
        let fan = |dims: &[i64]| dims.iter().product::<i64>() as f64;
        match name.as_str() {
            n if n.starts_with("neck.") && n.ends_with("weight") => {
                let bound = (6.0 / (fan(&size[1..]) + size[0] as f64 * fan(&size[2..]))).sqrt();
                assert!(t.abs().max().double_value(&[]) <= bound * (1.0 + 1e-6), "{name}: beyond Xavier's ±{bound}");
                assert_spread(name, t, bound / 3f64.sqrt());
            }
            n if (n.starts_with("minus_conv.") || n.starts_with("channel_att.")) && n.ends_with("weight") => {
                assert_spread(name, t, (2.0 / (size[0] as f64 * fan(&size[2..]))).sqrt());
            }
            "decode_head.conv_seg.weight" => assert_spread(name, t, 0.01),
            n if n.starts_with("context_decoder.") && n.ends_with("weight") && size.len() == 2 && t.numel() >= 1000 => assert_spread(name, t, 0.02),
            n if (n.starts_with("neck.") || n.starts_with("minus_conv.") || n.starts_with("channel_att.") || n == "decode_head.conv_seg.bias") => zero_bias(),
            n if n.starts_with("context_decoder.") && n.ends_with("bias") => zero_bias(),
            "contexts2" => assert!(t.abs().max().double_value(&[]) <= 2.0, "contexts2 beyond ±2"),
            n if n.starts_with("decode_head.") && n.ends_with("weight") && size.len() >= 2 && !n.contains("relative_position") && t.numel() >= 1000 => {
                // PyTorch's defaults: uniform in ±1/√fan_in, fan_in from dimension 1 on.
                let bound = 1.0 / fan(&size[1..]).sqrt();
                assert!(t.abs().max().double_value(&[]) <= bound * (1.0 + 1e-6), "{name}: beyond PyTorch's ±{bound}");
                assert_spread(name, t, bound / 3f64.sqrt());
            }
            _ => {}
        }
    }
}
