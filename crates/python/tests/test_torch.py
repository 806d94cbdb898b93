"""The package shares PyTorch's tensors, libtorch and autograd rather than copying them."""

import pathlib
import resource
import threading
import time

import numpy as np
import torch

import changedet


def test_the_process_maps_one_libtorch():
    maps = pathlib.Path("/proc/self/maps").read_text().splitlines()
    mapped = {line.split()[-1] for line in maps if line.split()[-1].endswith("libtorch_cpu.so")}
    torch_lib = pathlib.Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    assert {pathlib.Path(p).resolve() for p in mapped} == {torch_lib.resolve()}, mapped


def test_parameters_are_the_rust_models_own_tensors(levir_pair):
    model = changedet.create("fc-ef")
    module = model.as_module()
    first = dict(module.named_parameters())
    again = dict(module.named_parameters())
    assert first.keys() == again.keys() and len(first) > 10
    for name, tensor in first.items():
        assert tensor.data_ptr() == again[name].data_ptr(), name
        assert tensor.requires_grad and tensor.is_leaf, name
    before, after, _ = levir_pair
    crop = (slice(0, 32), slice(0, 32))
    was = model.predict(before[crop], after[crop]).logits
    with torch.no_grad():
        for tensor in first.values():
            tensor.zero_()  # written from Python, read by the Rust forward pass
    now = model.predict(before[crop], after[crop]).logits
    assert not np.array_equal(was, now) and np.allclose(now, now.flat[0])


def test_gradients_flow_through_as_module_and_a_step_changes_the_rust_model(levir_pair):
    torch.manual_seed(0)
    model = changedet.create("fc-siam-diff")
    before, after, label = levir_pair
    crop = (slice(0, 64), slice(0, 64))
    pixels = [torch.from_numpy(np.ascontiguousarray(x[crop].transpose(2, 0, 1))).unsqueeze(0) for x in (before, after)]
    target = torch.from_numpy((label[crop] > 0).astype(np.int64)).unsqueeze(0)
    predicted_before = model.predict(*pixels).logits
    module = model.as_module().train()
    x_before, x_after = module.preprocess(*pixels)
    x_before.requires_grad_(True)
    optimiser = torch.optim.SGD(module.parameters(), lr=0.1)

    logits = module(x_before, x_after)
    assert logits.shape == (1, 2, 64, 64) and logits.grad_fn is not None
    loss = torch.nn.functional.cross_entropy(logits, target)
    loss.backward()

    params = dict(module.named_parameters())
    assert all(p.grad is not None for p in params.values())
    assert x_before.grad is not None and x_before.grad.abs().sum() > 0  # the input's own graph
    snapshot = {name: p.detach().clone() for name, p in params.items()}
    optimiser.step()
    moved = {name for name, p in module.named_parameters() if not torch.equal(p, snapshot[name])}
    # Every weight moved (a convolution's bias right before a batch norm need not: the norm
    # subtracts it again, leaving it a gradient of rounding errors too small to move it).
    weights = {name for name in params if name.endswith("weight")}
    assert weights <= moved, sorted(weights - moved)
    module.eval()
    assert not torch.equal(model.predict(*pixels).logits, predicted_before)


def _counting(stop):
    count = [0]

    def count_up():
        while not stop.is_set():
            count[0] += 1

    return count, count_up


def _progress_during(work):
    """How far a Python thread counts per second while `work` runs on this one."""
    stop = threading.Event()
    count, count_up = _counting(stop)
    thread = threading.Thread(target=count_up)
    thread.start()
    time.sleep(0.05)
    start, begun = time.perf_counter(), count[0]
    work()
    elapsed, counted = time.perf_counter() - start, count[0] - begun
    stop.set()
    thread.join()
    return counted / elapsed


def test_the_gil_is_released_while_rust_computes(levir_pair, default_model):
    before, after, _ = levir_pair
    predicting = _progress_during(lambda: default_model.predict(before, after))
    # The control holds the GIL in one long C call (sorting a list), letting the counter in
    # only around it. Measured on 2 cores: the counter alone 10M/s, during the sort 0.2M/s,
    # during predict 3.9M/s (it shares the cores with libtorch's threads), so 15-40× apart.
    numbers = np.random.default_rng(0).random(3_000_000).tolist()
    holding = _progress_during(lambda: sorted(numbers))
    assert predicting > 5 * max(holding, 1.0), (predicting, holding)


def test_two_threads_predict_at_once_with_the_answers_of_one(levir_pair):
    before, after, _ = levir_pair
    models = [changedet.load(), changedet.load()]
    crops = [(slice(0, 512), slice(0, 512)), (slice(512, 1024), slice(512, 1024))]
    alone = [m.predict(before[c], after[c]).logits for m, c in zip(models, crops)]
    together = [None, None]

    def predict(i):
        together[i] = models[i].predict(before[crops[i]], after[crops[i]]).logits

    threads = [threading.Thread(target=predict, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a prediction never finished"
    for i in range(2):
        assert np.array_equal(together[i], alone[i])


def test_repeated_predictions_reuse_their_large_blocks(default_model):
    """A prediction's large CPU tensors come from blocks kept from the last one (cpu_blocks.rs),
    as the CLI's jemalloc keeps them: glibc's malloc maps every block over 32 MiB afresh and
    unmaps it on free, so each 512² FC-Siam-diff pass would fault its 33.5 MB decoder maps in
    again (8,192 pages each). Measured here: 62,850 minor faults for the first prediction, then
    0 to 513 for each next one; the bound is 2,048 pages (8 MiB) per prediction."""
    rng = np.random.default_rng(0)
    before, after = (rng.integers(0, 256, (512, 512, 3), dtype=np.uint8) for _ in range(2))
    for _ in range(2):
        default_model.predict(before, after)
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        default_model.predict(before, after)
    per_prediction = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / 3
    assert per_prediction < 2048, f"{per_prediction:.0f} page faults per prediction"
