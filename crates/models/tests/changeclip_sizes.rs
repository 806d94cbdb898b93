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
