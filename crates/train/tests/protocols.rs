//! The test-time protocols against the same computations written out by hand, on a small
//! random FC-Siam-diff (any model would do: the protocols only move windows around it).

use changedet_models::{ChangeModel, LoadedModel, ModelSpec};
use changedet_train::Protocol;
use tch::{Device, Kind, Tensor};

fn model() -> LoadedModel {
    tch::manual_seed(7);
    LoadedModel::new(ModelSpec::new("fc-siam-diff", None).unwrap(), Device::Cpu).unwrap()
}

fn logits(model: &dyn ChangeModel, b: &Tensor, a: &Tensor) -> Tensor {
    tch::no_grad(|| model.forward_t(b, a, false).logits)
}

fn pair(h: i64, w: i64) -> (Tensor, Tensor) {
    tch::manual_seed(11);
    (Tensor::randn([1, 3, h, w], (Kind::Float, Device::Cpu)), Tensor::randn([1, 3, h, w], (Kind::Float, Device::Cpu)))
}

#[test]
fn one_window_over_the_whole_image_is_the_whole_protocol() {
    let m = model();
    let (b, a) = pair(64, 64);
    let (whole, whole_change) = Protocol::Whole.change(m.model.as_ref(), &b, &a, &[], 0.5);
    let (slide, slide_change) = Protocol::Slide { crop: 64, stride: 32 }.change(m.model.as_ref(), &b, &a, &[], 0.5);
    assert!(whole.allclose(&slide, 0.0, 0.0, false));
    assert!(whole_change.equal(&slide_change));
}

#[test]
fn sliding_windows_average_their_logits_where_they_overlap() {
    let m = model();
    let (b, a) = pair(64, 96);
    let (slide, change) = Protocol::Slide { crop: 64, stride: 32 }.change(m.model.as_ref(), &b, &a, &[], 0.5);
    // Windows at x = 0 and 32: columns 32..63 are covered twice.
    let left = logits(m.model.as_ref(), &b.narrow(3, 0, 64), &a.narrow(3, 0, 64));
    let right = logits(m.model.as_ref(), &b.narrow(3, 32, 64), &a.narrow(3, 32, 64));
    let expected = Tensor::cat(&[left.narrow(3, 0, 32), (left.narrow(3, 32, 32) + right.narrow(3, 0, 32)) / 2.0, right.narrow(3, 32, 32)], 3);
    assert!(slide.allclose(&expected, 1e-6, 1e-6, false));
    assert!(change.equal(&expected.argmax(1, false).to_kind(Kind::Uint8)));
}

/// The random model with its change bias moved so that about half of these inputs' pixels are
/// marked changed (PyTorch's initialisation alone leaves every pixel of them unchanged, which
/// would make the OR-merge below trivially right).
fn marking_half(b: &Tensor, a: &Tensor) -> LoadedModel {
    let m = model();
    let l = logits(m.model.as_ref(), b, a);
    let margin = (l.select(1, 1) - l.select(1, 0)).median().double_value(&[]);
    let bias = m.vs.variables()["conv11d.bias"].shallow_clone();
    tch::no_grad(|| {
        let _ = bias.get(1).g_sub_scalar_(margin);
    });
    m
}

#[test]
fn tiles_are_reflect_padded_and_or_merged() {
    let (b, a) = pair(64, 64);
    let m = marking_half(&b.reflection_pad2d([8, 8, 8, 8]), &a.reflection_pad2d([8, 8, 8, 8]));
    let protocol = Protocol::Tiles { crop: 48, stride: 32, pad: 8 };
    let (_, change) = protocol.change(m.model.as_ref(), &b, &a, &[], 0.5);
    // Padded to 80: tiles at 0 and 32 on each axis, each argmaxed, any "changed" wins.
    let (pb, pa) = (b.reflection_pad2d([8, 8, 8, 8]), a.reflection_pad2d([8, 8, 8, 8]));
    let votes = Tensor::zeros([1, 80, 80], (Kind::Float, Device::Cpu));
    for y in [0, 32] {
        for x in [0, 32] {
            let tile = logits(m.model.as_ref(), &pb.narrow(2, y, 48).narrow(3, x, 48), &pa.narrow(2, y, 48).narrow(3, x, 48));
            let _ = votes.narrow(1, y, 48).narrow(2, x, 48).g_add_(&tile.argmax(1, false).to_kind(Kind::Float));
        }
    }
    let expected = votes.narrow(1, 8, 64).narrow(2, 8, 64).gt(0.0).to_kind(Kind::Uint8);
    assert!(change.equal(&expected));
    assert!(expected.sum(Kind::Int64).int64_value(&[]) > 0, "the random model marks some change");
}
