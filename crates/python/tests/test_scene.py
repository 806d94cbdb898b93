"""Whole scenes from Python are `changedet predict --scene`'s: the same COGs and polygons."""

import subprocess

import pytest

import changedet
from conftest import SAMPLES


def checksums(path):
    """GDAL's checksum of every band (gdal-bin comes with the set-up)."""
    info = subprocess.run(["gdalinfo", "-checksum", str(path)], capture_output=True, text=True, check=True).stdout
    return [line.split("=")[1] for line in info.splitlines() if "Checksum=" in line]


def test_a_sentinel2_scene_gives_the_clis_maps_and_polygons(tmp_path, cli):
    paris = SAMPLES / "scenes/oscd-paris"
    before, after = (sorted((paris / date).glob("*.tif")) for date in ("imgs_1", "imgs_2"))
    options = dict(bands=[3, 2, 1], tile=256, overlap=32)
    summary = changedet.predict_scene(before, after, tmp_path / "py", vector=tmp_path / "py/changes.gpkg", **options)
    cli("predict", "--before", ",".join(map(str, before)), "--after", ",".join(map(str, after)), "--bands", "3,2,1",
        "--tile", 256, "--overlap", 32, "--out", tmp_path / "cli", "--vector", tmp_path / "cli/changes.gpkg", "--device", "cpu")

    assert summary["changed_pixels"] > 0 and summary["polygons"] > 0 and summary["changed_area_m2"] > 0
    for name in ("change.tif", "probability.tif"):
        assert checksums(tmp_path / "py" / name) == checksums(tmp_path / "cli" / name), name
    count = lambda path: subprocess.run(["ogrinfo", "-so", "-al", str(path)], capture_output=True, text=True, check=True).stdout.split("Feature Count: ")[1].split()[0]
    assert int(count(tmp_path / "py/changes.gpkg")) == summary["polygons"] == int(count(tmp_path / "cli/changes.gpkg"))


def test_bad_scene_options(tmp_path):
    scene = SAMPLES / "scenes/cbers4"
    before, after = sorted((scene / "A").glob("*.tif")), sorted((scene / "B").glob("*.tif"))
    with pytest.raises(changedet.InputError, match="unknown scene option 'tiles'"):
        changedet.predict_scene(before, after, tmp_path, tiles=64)
    with pytest.raises(changedet.InputError, match="give vector too"):
        changedet.predict_scene(before, after, tmp_path, min_area=10)
    with pytest.raises(changedet.InputError, match="scale 'loud'"):
        changedet.predict_scene(before, after, tmp_path, scale="loud")
    with pytest.raises(changedet.Error, match="missing.tif"):
        changedet.predict_scene([tmp_path / "missing.tif"], after[:1], tmp_path / "out")
