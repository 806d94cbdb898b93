"""Training from Python is `changedet train`'s run: same checkpoints, stopped and resumed alike."""

import json
import signal

import pytest
from safetensors.torch import load_file

import changedet


@pytest.fixture
def levir(tmp_path, levir_paths):
    dataset = tmp_path / "levir"
    for part, path in zip(("A", "B", "label"), levir_paths):
        (dataset / part).mkdir(parents=True)
        (dataset / part / path.name).symlink_to(path)
    return f"levir-cd:{dataset}"


# Two epochs over the 16 patches of 256² of one 1024² pair in batches of 4: 8 steps, and a
# validation on the whole pair after each epoch.
RECIPE = dict(train_split="all", val_split="all", epochs=2, batch_size=4, patches="256:256", lr=1e-3)


def tiny(levir, out, **extra):
    return changedet.train(out, levir, "fc-ef", progress=False, **{**RECIPE, **extra})


def weights(path):
    return {k: v for k, v in load_file(path).items() if k.startswith("model.")}


def test_a_run_reports_its_steps_and_validations_and_matches_the_cli(tmp_path, cli, levir):
    events = []
    summary = tiny(levir, tmp_path / "py", callback=events.append)
    steps = [e for e in events if e["kind"] == "step"]
    validations = [e for e in events if e["kind"] == "validation"]
    assert summary["epochs"] == 2 and summary["steps"] == len(steps) > 2
    assert [e["step"] for e in steps] == list(range(1, len(steps) + 1))
    assert len(validations) == 2 and json.loads(validations[-1]["entry"])["epoch"] == 2
    assert "val F1" in validations[0]["line"]

    cli("train", "--model", "fc-ef", "--dataset", levir, "--train-split", "all", "--val-split", "all", "--epochs", 2,
        "--batch-size", 4, "--patches", "256:256", "--lr", 1e-3, "--out", tmp_path / "cli", "--device", "cpu")
    ours, theirs = weights(tmp_path / "py/last.safetensors"), weights(tmp_path / "cli/last.safetensors")
    assert ours.keys() == theirs.keys()
    # The same job from the same library in two processes: the same bits.
    assert all((ours[k] == theirs[k]).all() for k in ours)


def test_a_stopped_run_resumes_to_the_uninterrupted_weights(tmp_path, levir):
    tiny(levir, tmp_path / "whole")
    steps_per_epoch = json.loads((tmp_path / "whole/metrics.jsonl").read_text().splitlines()[0])["step"]
    stopped = tiny(levir, tmp_path / "stopped", callback=lambda e: not (e["kind"] == "step" and e["step"] == steps_per_epoch + 1))
    assert stopped["steps"] == steps_per_epoch + 1
    resumed = changedet.train(tmp_path / "stopped", resume=True, progress=False)
    assert resumed["epochs"] == 2
    whole, again = weights(tmp_path / "whole/last.safetensors"), weights(tmp_path / "stopped/last.safetensors")
    assert all((whole[k] == again[k]).all() for k in whole)


def test_ctrl_c_stops_between_steps_and_the_run_goes_on(tmp_path, levir):
    def interrupt(event):
        if event["kind"] == "step" and event["step"] == 2:
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        tiny(levir, tmp_path / "run", callback=interrupt)
    assert not (tmp_path / "run/last.safetensors").exists()  # no epoch ended: nothing to keep
    summary = tiny(levir, tmp_path / "run", overwrite=True)
    assert summary["epochs"] == 2


def test_fine_tuning_a_python_model(tmp_path, levir):
    model = changedet.create("fc-siam-diff", width=8)
    summary = changedet.train(tmp_path / "tuned", levir, model, progress=False, **{**RECIPE, "epochs": 1})
    tuned = changedet.load(tmp_path / "tuned/last.safetensors")
    assert summary["epochs"] == 1 and tuned.config == model.config


def test_bad_training_options(tmp_path, levir):
    with pytest.raises(changedet.InputError, match="unknown training option 'epochz'"):
        changedet.train(tmp_path / "x", levir, "fc-ef", epochz=3)
    with pytest.raises(changedet.InputError, match="schedule 'sometimes'"):
        changedet.train(tmp_path / "x", levir, "fc-ef", schedule="sometimes")
    with pytest.raises(changedet.InputError, match="training in fp16"):
        changedet.train(tmp_path / "x", levir, "fc-ef", precision="fp16", train_split="all", val_split="all")
    with pytest.raises(changedet.DataError):
        changedet.train(tmp_path / "x", f"levir-cd:{tmp_path / 'nowhere'}", "fc-ef")
