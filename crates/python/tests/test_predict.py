"""Predictions from Python are the CLI's: same checkpoint, same pair, same numbers."""

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file

import changedet


def test_default_model_predicts_a_png_pair_like_the_cli(tmp_path, cli, levir_pair, levir_paths, default_model):
    before, after, _ = levir_pair
    cli("predict", "--before", levir_paths[0], "--after", levir_paths[1], "--out", tmp_path, "--raw", tmp_path / "raw.safetensors", "--device", "cpu")
    cli_logits = load_file(tmp_path / "raw.safetensors")["logits"][0]
    cli_change = np.asarray(Image.open(tmp_path / "test_2_change.png"))

    result = default_model.predict(before, after)

    # One process each, the same code from the PNG bytes on (decoding, normalisation, the
    # network readied for inference alike), so the same bits.
    assert torch.equal(torch.from_numpy(result.logits), cli_logits)
    assert np.array_equal(result.mask * 255, cli_change)
    assert result.mask.dtype == np.uint8 and result.mask.shape == before.shape[:2]
    assert result.probability.dtype == np.float32 and 0 < result.mask.sum() < result.mask.size
    expected = torch.softmax(cli_logits, 0)[1].numpy()
    assert np.array_equal(result.probability, expected)


def test_torch_layouts_give_the_numpy_results(levir_pair, default_model):
    before, after, _ = levir_pair
    crop = (slice(0, 256), slice(256, 512))
    b, a = before[crop], after[crop]
    from_numpy = default_model.predict(b, a)
    chw = [torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1))) for x in (b, a)]
    single = default_model.predict(*chw)
    batch = default_model.predict(torch.stack([chw[0], chw[1]]), torch.stack([chw[1], chw[0]]))
    torchgeo = default_model.predict(torch.stack([torch.stack(chw)]), None)

    assert isinstance(single.mask, torch.Tensor) and single.mask.shape == (256, 256)
    assert torch.equal(single.mask, torch.from_numpy(from_numpy.mask))
    assert batch.mask.shape == (2, 256, 256) and torch.equal(batch.mask[0], single.mask)
    assert torch.equal(torchgeo.probability[0], single.probability)
    # The reverse pair is another question with another answer.
    assert not torch.equal(batch.probability[1], single.probability)


def test_sixteen_bit_pixels_are_normalised_as_16_bit(levir_pair):
    # A per-image normalised model reads uint16 bands; scaling every pixel by 257 maps 8-bit
    # values onto the 16-bit range, which a per-image z-score cancels exactly up to rounding.
    model = changedet.create("fc-ef", normalization="per-image-z-score")
    before, after, _ = levir_pair
    b8, a8 = before[:64, :64], after[:64, :64]
    eight = model.predict(b8, a8)
    sixteen = model.predict(b8.astype(np.uint16) * 257, a8.astype(np.uint16) * 257)
    assert sixteen.probability.shape == (64, 64)
    np.testing.assert_allclose(sixteen.probability, eight.probability, atol=1e-4)


def test_saved_models_load_in_python_and_in_the_cli(tmp_path, cli, levir_pair):
    model = changedet.create("fc-siam-conc")
    path = tmp_path / "model.safetensors"
    model.save(path)
    again = changedet.load(path)
    before, after, _ = levir_pair
    crop = (slice(0, 64), slice(0, 64))
    assert np.array_equal(model.predict(before[crop], after[crop]).logits, again.predict(before[crop], after[crop]).logits)
    assert again.name == "fc-siam-conc" and again.config == model.config
    assert "fc-siam-conc" in cli("info", path)


def test_metrics_are_the_cli_scores(tmp_path, cli, levir_pair, levir_paths, default_model):
    before, after, label = levir_pair
    mask = default_model.predict(before, after).mask
    scores = changedet.metrics(mask, (label > 0).astype(np.uint8))
    c = scores["confusion"]
    assert c["tp"] + c["fp"] + c["fn"] + c["tn"] == label.size
    assert scores["f1"] == 2 * c["tp"] / (2 * c["tp"] + c["fp"] + c["fn"])

    dataset = tmp_path / "levir"
    for part, path in zip(("A", "B", "label"), levir_paths):
        (dataset / part).mkdir(parents=True)
        (dataset / part / path.name).symlink_to(path)
    cli("eval", "--dataset", f"levir:{dataset}", "--split", "all", "--device", "cpu", "--json", tmp_path / "eval.json")
    import json

    cli_scores = json.loads((tmp_path / "eval.json").read_text())["metrics"]
    assert cli_scores["confusion"] == c
    assert default_model.evaluate(f"levir:{dataset}", split="all")["metrics"] == cli_scores


def test_the_quickstart_example_runs(tmp_path):
    import pathlib
    import subprocess
    import sys

    example = pathlib.Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"
    done = subprocess.run([sys.executable, str(example), str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "default model: F1" in done.stdout and "after 3 steps" in done.stdout
    drawn = Image.open(tmp_path / "quickstart.png")
    assert drawn.size[0] > 800 and len(np.unique(np.asarray(drawn.convert("L")))) > 50
    assert changedet.load(tmp_path / "fine-tuned.safetensors").name == "fc-siam-diff"


def test_an_imported_reference_checkpoint_predicts_the_reference_outputs():
    """ClearSCD's official weights (.pth), imported from Python, on the golden's first pair."""
    import pathlib

    golden = pathlib.Path(__file__).resolve().parents[3].parent / "shared/golden/clearscd"
    model = changedet.import_reference(golden / "weights.pth", model="clearscd")
    reference = load_file(golden / "forward.safetensors")
    before, after = (reference[f"input.imgs_{d}_u8"][0].numpy() for d in "AB")
    result = model.predict(before, after)

    # The golden README's tolerance for outputs: atol 2e-4, rtol 1e-4.
    change_logit = torch.from_numpy(result.logits[1] - result.logits[0])
    torch.testing.assert_close(change_logit, reference["out.BCD"][0, 0], atol=2e-4, rtol=1e-4)
    for classes, seg in ((result.before_classes, reference["out.seg_A"][0]), (result.after_classes, reference["out.seg_B"][0])):
        top2 = seg.topk(2, dim=0).values
        decided = (top2[0] - top2[1]) > 4e-4  # where the tolerance cannot swap the two best classes
        assert decided.float().mean() > 0.99
        assert torch.equal(torch.from_numpy(classes)[decided], seg.argmax(0).to(torch.uint8)[decided])
