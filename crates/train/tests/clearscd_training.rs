//! ClearSCD trains: on a small synthetic semantic-change fixture (coloured land-cover blocks,
//! some of which change class between the dates; generated here, nothing real), Adam steps on
//! the full objective lower every loss term, the memory queues fill as the reference fills them,
//! and a checkpoint carries the queues so that a reloaded model continues exactly.

use changedet_models::checkpoint::copy_into;
use changedet_models::clearscd::{ClearScd, Config};
use changedet_models::clearscd_loss::{self, ClearScdLosses, RandomPermutations, ScdLabels, clearscd_losses};
use changedet_models::{Checkpoint, ModelSpec};
use changedet_train::optim::{Adam, OptimizerKind};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

const CLASSES: i64 = 4;
const SIZE: i64 = 64;

/// Two pairs: 16×16 blocks of 4 classes, each class its own colour plus noise; a third of
/// the blocks change class in the after image. Block (0, 0) of pair 0 is unlabeled (class K).
struct Fixture {
    before: Tensor,
    after: Tensor,
    semantic: [Tensor; 2],
    change: Tensor,
}

fn fixture() -> Fixture {
    let colours = Tensor::from_slice(&[1.5f32, -1.0, -1.0, -1.0, 1.5, -1.0, -1.0, -1.0, 1.5, 1.0, 1.0, -0.5]).view([CLASSES, 3]);
    let blocks = SIZE / 16;
    let before_blocks = Tensor::randint(CLASSES, [2, blocks, blocks], (Kind::Int64, Device::Cpu));
    let changes = Tensor::rand([2, blocks, blocks], (Kind::Float, Device::Cpu)).lt(0.35);
    let after_blocks = before_blocks.where_self(&changes.logical_not(), &((&before_blocks + 1).remainder(CLASSES)));
    let upsample = |b: &Tensor| b.repeat_interleave_self_int(16, Some(1), None).repeat_interleave_self_int(16, Some(2), None);
    let (label_a, label_b) = (upsample(&before_blocks), upsample(&after_blocks));
    let image = |label: &Tensor| colours.index_select(0, &label.flatten(0, -1)).view([2, SIZE, SIZE, 3]).permute([0, 3, 1, 2]) + Tensor::randn([2, 3, SIZE, SIZE], (Kind::Float, Device::Cpu)) * 0.3;
    let (before, after) = (image(&label_a), image(&label_b));
    let change = label_a.ne_tensor(&label_b).to_kind(Kind::Int64);
    let unlabeled = |l: &Tensor| {
        let _ = l.narrow(0, 0, 1).narrow(1, 0, 16).narrow(2, 0, 16).fill_(CLASSES);
    };
    unlabeled(&label_a);
    unlabeled(&label_b);
    let _ = change.narrow(0, 0, 1).narrow(1, 0, 16).narrow(2, 0, 16).fill_(255);
    Fixture { before, after, semantic: [label_a, label_b], change }
}

fn model_config() -> Config {
    let mut cfg = Config { num_classes: CLASSES, queue_len: 128, ..Config::default() };
    cfg.decoder.dropout = 0.0;
    cfg.encoder.drop_connect_rate = 0.0;
    cfg
}

fn loss_config() -> clearscd_loss::Config {
    clearscd_loss::Config { enqueue_len: 16, sample_num: 256, ..clearscd_loss::Config::default() }
}

/// A ClearSCD network with its variables, typed, so that the test can call its own API.
struct Model {
    vs: VarStore,
    net: ClearScd,
}

impl Model {
    fn new() -> Self {
        let vs = VarStore::new(Device::Cpu);
        let net = ClearScd::new(&vs.root(), &model_config());
        Model { vs, net }
    }

    /// The SACL memory queues and their pointers, by variable name.
    fn queues(&self) -> Vec<(String, Tensor)> {
        let mut queues: Vec<(String, Tensor)> = self.vs.variables().into_iter().filter(|(k, _)| k.starts_with("queue_") || k.starts_with("ptr_")).collect();
        queues.sort_by(|a, b| a.0.cmp(&b.0));
        queues
    }
}

/// One Adam step on the full objective; returns the losses of that step.
fn step(model: &Model, optimizer: &mut Adam, data: &Fixture, warmup: bool) -> ClearScdLosses {
    let net = &model.net;
    let out = net.forward_scd(&data.before, &data.after, true);
    let labels = ScdLabels { semantic: [&data.semantic[0], &data.semantic[1]], change: &data.change };
    let losses = clearscd_losses(net, &out, &labels, &loss_config(), warmup, true, &mut RandomPermutations);
    optimizer.zero_grad();
    losses.total().backward();
    optimizer.step(1e-3);
    losses
}

fn queues_equal(a: &Model, b: &Model) -> bool {
    let (a, b) = (a.queues(), b.queues());
    a.len() == b.len() && a.iter().zip(&b).all(|((ka, x), (kb, y))| ka == kb && x.equal(y))
}

#[test]
fn steps_lower_every_loss_and_checkpoints_carry_the_queues() {
    tch::set_num_threads(2);
    tch::manual_seed(11);
    let data = fixture();
    let model = Model::new();
    let mut optimizer = Adam::new(&model.vs, OptimizerKind::Adam, 5e-4);

    // Epoch 1 is the warm-up: no global term, the queues only fill (16 keys per class and step).
    let first = step(&model, &mut optimizer, &data, true);
    assert_eq!(first.sacl_global.double_value(&[]), 0.0);
    let pointers: Vec<i64> = model.queues().iter().filter(|(k, _)| k.starts_with("ptr_A")).map(|(_, p)| p.int64_value(&[0])).collect();
    assert_eq!(pointers.len(), CLASSES as usize);
    assert!(pointers.iter().all(|&p| p == 16), "every class has ≥16 low-resolution pixels: {pointers:?}");

    let mut history: Vec<Vec<(&str, f64)>> = vec![first.values()];
    for _ in 0..24 {
        history.push(step(&model, &mut optimizer, &data, false).values());
    }
    for (term, start) in &history[0] {
        // The global term starts with the second step; BSCC and SACL fluctuate, so compare the
        // mean of the first three steps that have the term with the mean of the last three.
        let offset = if *term == "sacl_global" { 1 } else { 0 };
        let mean = |steps: &[Vec<(&str, f64)>]| steps.iter().map(|s| s.iter().find(|(t, _)| t == term).unwrap().1).sum::<f64>() / steps.len() as f64;
        let (early, late) = (mean(&history[offset..offset + 3]), mean(&history[history.len() - 3..]));
        eprintln!("{term}: first {start:.4}, early mean {early:.4}, late mean {late:.4}");
        assert!(late < early, "{term} did not decrease: {early} → {late}");
    }

    // Queues and pointers travel in the checkpoint; the reloaded model continues identically.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clearscd.safetensors");
    Checkpoint::write_variables(&path, &ModelSpec::ClearScd(model_config()), &model.vs, None, &[], None).unwrap();
    let mut reloaded = Model::new();
    copy_into(&mut reloaded.vs, &Checkpoint::read(&path).unwrap().model, &path, "clearscd").unwrap();
    assert!(queues_equal(&model, &reloaded));
    let mut optimizer_reloaded = Adam::new(&reloaded.vs, OptimizerKind::Adam, 5e-4);
    optimizer_reloaded.load_state(&optimizer.state().into_iter().collect()).unwrap();
    tch::manual_seed(5);
    let a = step(&model, &mut optimizer, &data, false).total().double_value(&[]);
    tch::manual_seed(5);
    let b = step(&reloaded, &mut optimizer_reloaded, &data, false).total().double_value(&[]);
    assert_eq!(a, b);
    assert!(queues_equal(&model, &reloaded));
}
