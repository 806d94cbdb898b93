use std::time::Duration;

use changedet_profile::{OpEvent, profile, self_times};
use tch::{Kind, Tensor};

fn event(name: &str, thread: u64, start_ns: u64, end_ns: u64) -> OpEvent {
    OpEvent { name: name.into(), thread, start_ns, end_ns }
}

fn self_ms(ops: &[changedet_profile::OpTime], name: &str) -> (usize, Duration) {
    let op = ops.iter().find(|op| op.name == name).unwrap_or_else(|| panic!("{name} is in the profile"));
    (op.calls, op.self_time)
}

#[test]
fn self_time_is_a_call_minus_the_calls_nested_in_it() {
    // conv2d [0, 100) calls convolution [10, 90), which calls mkldnn [20, 80); add [100, 110)
    // follows; on another thread, mm [5, 50) overlaps all of it without nesting in it.
    let ops = self_times(vec![
        event("aten::mkldnn_convolution", 1, 20, 80),
        event("aten::add", 1, 100, 110),
        event("aten::conv2d", 1, 0, 100),
        event("aten::convolution", 1, 10, 90),
        event("aten::mm", 2, 5, 50),
    ]);
    let ns = Duration::from_nanos;
    assert_eq!(self_ms(&ops, "aten::conv2d"), (1, ns(20)));
    assert_eq!(self_ms(&ops, "aten::convolution"), (1, ns(20)));
    assert_eq!(self_ms(&ops, "aten::mkldnn_convolution"), (1, ns(60)));
    assert_eq!(self_ms(&ops, "aten::add"), (1, ns(10)));
    assert_eq!(self_ms(&ops, "aten::mm"), (1, ns(45)));
    assert_eq!(ops[0].name, "aten::mkldnn_convolution", "longest self time first");
}

#[test]
fn self_times_add_up_over_calls_of_one_operator() {
    // Two sibling calls of the same operator inside one parent, then a second top-level call.
    let ops = self_times(vec![event("f", 0, 0, 100), event("g", 0, 10, 30), event("g", 0, 40, 70), event("g", 0, 200, 205)]);
    assert_eq!(self_ms(&ops, "f"), (1, Duration::from_nanos(50)));
    assert_eq!(self_ms(&ops, "g"), (3, Duration::from_nanos(55)));
}

#[test]
fn profiling_libtorch_records_its_operators() {
    let a = Tensor::randn([64, 64], (Kind::Float, tch::Device::Cpu));
    let (sum, report) = profile(|| (0..3).map(|_| a.mm(&a).sum(Kind::Float).double_value(&[])).sum::<f64>()).unwrap();
    assert!(sum.is_finite());
    assert_eq!(self_ms(&report.ops, "aten::mm").0, 3, "{:?}", report.ops);
    assert!(report.in_operators() <= report.wall, "{:?} inside operators of {:?}", report.in_operators(), report.wall);
    let table = report.table(2).to_string();
    assert!(table.contains("other operators") && table.contains("outside any operator"), "{table}");

    // A run that panics while recording leaves the profiler ready for the next one.
    let panicked = std::panic::catch_unwind(|| profile(|| -> () { panic!("inside the profiled run") }));
    assert!(panicked.is_err());
    let (_, again) = profile(|| a.mm(&a)).unwrap();
    assert_eq!(self_ms(&again.ops, "aten::mm").0, 1);
}
