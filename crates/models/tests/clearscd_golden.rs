//! ClearSCD equals the reference: the official checkpoint (`weights.pth`, read without pickle
//! execution) run on the real LEVIR pair stored in `forward.safetensors`, from its raw uint8
//! pixels, reproduces every stored intermediate and output within the tolerances of the
//! golden README (../shared/golden/clearscd/README.md, "Expected tolerances").

use std::collections::BTreeMap;
use std::path::PathBuf;

use changedet_models::clearscd::{ClearScd, Config};
use changedet_models::encoders::Encoder;
use changedet_models::input::normalise_pixels;
use tch::nn::VarStore;
use changedet_models::{ModelSpec, import, tensor_io};
use tch::{Device, Kind, Tensor};

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/golden/clearscd").join(name)
}

/// Max |ours − theirs| − (atol + rtol·|theirs|) must not be positive; prints the worst error
/// and the largest share of its allowance an element uses.
fn assert_close(name: &str, ours: &Tensor, theirs: &Tensor, atol: f64, rtol: f64) {
    assert_eq!(ours.size(), theirs.size(), "{name}: shape");
    let ours = ours.to_kind(Kind::Double);
    let theirs = theirs.to_kind(Kind::Double);
    let error = (&ours - &theirs).abs();
    let allowance = theirs.abs() * rtol + atol;
    let excess = (&error - &allowance).max().double_value(&[]);
    let used = (&error / &allowance).max().double_value(&[]);
    eprintln!("{name}: max abs error {:.3e}, {:.0} % of the allowance", error.max().double_value(&[]), 100.0 * used);
    assert!(excess <= 0.0, "{name}: outside atol {atol:e} + rtol {rtol:e} by {excess:e}");
}


struct Fixture {
    tensors: BTreeMap<String, Tensor>,
}

impl Fixture {
    fn get(&self, name: &str) -> &Tensor {
        self.tensors.get(name).unwrap_or_else(|| panic!("golden tensor {name} missing"))
    }
}

/// The reference model with the official checkpoint, and what the import skipped.
fn load_model() -> (VarStore, ClearScd, import::ImportReport) {
    let path = golden("weights.pth");
    let spec = ModelSpec::ClearScd(Config::default());
    let mut vs = VarStore::new(Device::Cpu);
    let ModelSpec::ClearScd(cfg) = &spec else { unreachable!() };
    let model = ClearScd::new(&vs.root(), cfg);
    let state_dict = import::read_state_dict(&path).expect("weights.pth reads");
    assert_eq!(state_dict.len(), 457);
    let report = import::import_into(&mut vs, &spec, state_dict, &path).expect("the official checkpoint imports");
    (vs, model, report)
}

#[test]
fn official_checkpoint_reproduces_every_stored_tensor() {
    tch::set_num_threads(2);
    let (vs, model, report) = load_model();
    // Skipped: the unused EfficientNet head (`_conv_head` + 5 `_bn1` entries) and the step
    // counters of the 48 other encoder, 3 CVAPS and 1 projection BatchNorms; the rest are variables.
    let head = report.skipped.iter().filter(|(k, _)| k.starts_with("encoder._conv_head.") || k.starts_with("encoder._bn1.")).count();
    assert_eq!((head, report.skipped.len(), vs.variables().len()), (6, 6 + 48 + 3 + 1, 457 - 58));

    let fixture = Fixture { tensors: tensor_io::read(&golden("forward.safetensors")).unwrap().tensors };
    let norm = Config::default().normalization;
    let before = normalise_pixels(fixture.get("input.imgs_A_u8"), &norm);
    let after = normalise_pixels(fixture.get("input.imgs_B_u8"), &norm);
    assert_close("input.imgs_A", &before, fixture.get("input.imgs_A"), 1e-6, 0.0);
    assert_close("input.imgs_B", &after, fixture.get("input.imgs_B"), 1e-6, 0.0);

    // The stored intermediates are those of batch element 0; eval mode treats elements independently.
    let (a, b) = (before.narrow(0, 0, 1), after.narrow(0, 0, 1));
    let (enc, dec) = (5e-5, 2e-4);
    tch::no_grad(|| {
        let pyramid = model.encoder.forward_t(&a, false);
        for (i, f) in pyramid.iter().enumerate() {
            let name = format!("enc_A.f{}", i + 1);
            assert_close(&name, f, fixture.get(&name), enc, 1e-4);
        }
        let dec_a = model.decoder.forward_t(&pyramid, false);
        assert_close("dec_A", &dec_a, fixture.get("dec_A"), dec, 1e-4);
        assert_close("proj_A", &model.projection.forward_t(&dec_a, false), fixture.get("proj_A"), dec, 1e-4);

        let out = model.forward_scd(&a, &b, false);
        assert_close("logits_lowres_A", &out.logits_low[0], fixture.get("logits_lowres_A"), dec, 1e-4);
        assert_close("logits_lowres_B", &out.logits_low[1], fixture.get("logits_lowres_B"), dec, 1e-4);
        let difference = (&out.logits_low[0] - &out.logits_low[1]).abs();
        assert_close("cvaps.input_absdiff", &difference, fixture.get("cvaps.input_absdiff"), dec, 1e-4);
        let stages = model.cvaps.stages_t(&difference, false);
        for (i, stage) in stages[..3].iter().enumerate() {
            let name = format!("cvaps.block{i}_out");
            assert_close(&name, stage, fixture.get(&name), dec, 1e-4);
        }
        assert_close("cvaps.change_logit_lowres", &out.change_low, fixture.get("cvaps.change_logit_lowres"), dec, 1e-4);
        assert_close("out.seg_A", &out.semantic[0], fixture.get("out.seg_A"), dec, 1e-4);
        assert_close("out.seg_B", &out.semantic[1], fixture.get("out.seg_B"), dec, 1e-4);
        assert_close("out.BCD", &out.change, fixture.get("out.BCD"), dec, 1e-4);

        // Decisions: class maps and change map agree wherever the reference's own margin
        // (top-1 minus top-2 logit, or |change logit|) exceeds the tolerance.
        for (date, name) in [(0, "out.seg_A"), (1, "out.seg_B")] {
            let theirs = fixture.get(name);
            let top2 = theirs.topk(2, 1, true, true).0;
            let decided = (top2.select(1, 0) - top2.select(1, 1)).gt(dec);
            let disagree = out.semantic[date].argmax(1, false).ne_tensor(&theirs.argmax(1, false)).logical_and(&decided);
            assert_eq!(disagree.sum(Kind::Int64).int64_value(&[]), 0, "{name}: argmax differs where the margin is clear");
        }
        let theirs = fixture.get("out.BCD");
        let decided = theirs.abs().gt(dec);
        let disagree = out.change.gt(0.0).ne_tensor(&theirs.gt(0.0)).logical_and(&decided);
        assert_eq!(disagree.sum(Kind::Int64).int64_value(&[]), 0, "change map differs where the margin is clear");
    });
}
