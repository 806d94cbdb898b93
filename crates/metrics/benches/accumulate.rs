//! Accumulation throughput of every convention over 1024×1024 maps, in pixels per second
//! (criterion reports "elements/s" = pixels/s). `cargo bench -p changedet-metrics`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use changedet_metrics::{BinaryConfusion, ClearScdAccumulator, ScdAccumulator, ScdConvention, ScdPair};

const SIDE: usize = 1024;
const MAPS: usize = 4;
const CLASSES: u8 = 9;

fn random_pair(rng: &mut ChaCha8Rng) -> ScdPair {
    let n = SIDE * SIDE;
    let mut map = |hi: u8| (0..n).map(|_| rng.random_range(0..hi)).collect::<Vec<u8>>();
    ScdPair {
        gt_a: map(CLASSES + 1),
        gt_b: map(CLASSES + 1),
        gt_change: map(2),
        pred_a: map(CLASSES),
        pred_b: map(CLASSES),
        pred_change: map(2),
    }
}

fn accumulate(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let pairs: Vec<ScdPair> = (0..MAPS).map(|_| random_pair(&mut rng)).collect();
    let mut group = c.benchmark_group("accumulate 4 maps of 1024x1024");
    group.throughput(Throughput::Elements((MAPS * SIDE * SIDE) as u64));
    group.sample_size(10);
    group.bench_function("binary", |b| {
        b.iter(|| {
            let mut acc = BinaryConfusion::default();
            for p in &pairs {
                acc.accumulate(&p.pred_change, &p.gt_change, Some(255)).unwrap();
            }
            acc
        })
    });
    for (name, convention) in [("second", ScdConvention::Second), ("fromto", ScdConvention::FromTo)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut acc = ScdAccumulator::new(convention, CLASSES as usize);
                for p in &pairs {
                    acc.add(&p.maps()).unwrap();
                }
                acc
            })
        });
    }
    group.bench_function("clearscd", |b| {
        b.iter(|| {
            let mut acc = ClearScdAccumulator::new(CLASSES as usize);
            for p in &pairs {
                acc.add(&p.maps()).unwrap();
            }
            acc
        })
    });
    group.finish();
}

criterion_group!(benches, accumulate);
criterion_main!(benches);
