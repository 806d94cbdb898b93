//! Models under autocast (`--precision bf16`) on the CPU: outputs in fp32, close to the fp32
//! model's, and a training step that runs.

use tch::{Device, Kind, Tensor};

use changedet_data::Preset;
use changedet_models::input::BatchTensors;
use changedet_models::{LoadedModel, ModelSpec, Precision};

fn pair(n: i64, side: i64) -> (Tensor, Tensor) {
    tch::manual_seed(3);
    (Tensor::randn([n, 3, side, side], (Kind::Float, Device::Cpu)), Tensor::randn([n, 3, side, side], (Kind::Float, Device::Cpu)))
}

/// Largest difference from the fp32 model, relative to the largest fp32 output.
fn relative_gap(model: &str, precision: Precision, side: i64) -> f64 {
    let fp32 = LoadedModel::new(ModelSpec::new(model, None).unwrap(), Device::Cpu).unwrap();
    let mut reduced = LoadedModel::new(ModelSpec::new(model, None).unwrap(), Device::Cpu).unwrap();
    reduced.vs.copy(&fp32.vs).unwrap();
    let reduced = reduced.with_precision(precision);
    let (before, after) = pair(2, side);
    let (a, b) = tch::no_grad(|| (fp32.model.forward_t(&before, &after, false), reduced.model.forward_t(&before, &after, false)));
    assert_eq!(b.logits.kind(), Kind::Float, "{model}: outputs come back in fp32");
    let mut gap = (&a.logits - &b.logits).abs().max().double_value(&[]) / a.logits.abs().max().double_value(&[]);
    if let (Some(sa), Some(sb)) = (a.semantic, b.semantic) {
        for (x, y) in sa.iter().zip(&sb) {
            assert_eq!(y.kind(), Kind::Float);
            gap = gap.max((x - y).abs().max().double_value(&[]) / x.abs().max().double_value(&[]));
        }
    }
    gap
}

#[test]
fn bf16_outputs_are_fp32_and_close_to_fp32() {
    for model in ["fc-siam-diff", "clearscd"] {
        let gap = relative_gap(model, Precision::Bf16, 64);
        println!("{model}: {gap:.2e}");
        assert!(gap > 0.0, "{model}: autocast changed nothing");
        // bf16 keeps 8 mantissa bits (2⁻⁹ relative rounding per operation); measured here
        // 5.4e-3 (FC-Siam-diff) and 1.1e-2 (ClearSCD) of the largest output.
        assert!(gap < 0.05, "{model}: {gap}");
    }
}

#[test]
fn a_bf16_training_step_runs() {
    tch::manual_seed(5);
    let model = LoadedModel::new(ModelSpec::new("fc-siam-diff", None).unwrap(), Device::Cpu).unwrap().with_precision(Precision::Bf16);
    let (before, after) = pair(2, 64);
    let batch = BatchTensors { before, after, label: Some(Tensor::randint(2, [2, 64, 64], (Kind::Int64, Device::Cpu))), semantic: None, classes: vec![Default::default(); 2] };
    let mut recipe = model.spec.reference_recipe(Preset::Generic);
    recipe.loss = recipe.loss.with_change_fraction(0.5);
    let loss = model.model.training_loss(&batch, &recipe, 0).unwrap();
    assert_eq!(loss.kind(), Kind::Float);
    assert!(loss.double_value(&[]).is_finite());
    loss.backward();
    let grads: f64 = model.vs.trainable_variables().iter().map(|v| v.grad().abs().sum(Kind::Double).double_value(&[])).sum();
    assert!(grads.is_finite() && grads > 0.0, "{grads}");
}
