"""Model sources: format detection, interface reading and clear errors on bad files."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from support.models import export_vision_model
from support.paths import SUPPORT
from wherry.convert import source
from wherry.convert.source import SourceError


@pytest.fixture(scope="module")
def paddle1_dir(tmp_path_factory, example_model):
    out = tmp_path_factory.mktemp("p1x") / "digits_1x"
    subprocess.run([sys.executable, str(SUPPORT / "export_paddle1.py"), str(example_model.with_suffix("")),
                    str(out)], check=True, capture_output=True)
    return out


def test_legacy_by_file_dir_and_prefix(example_model):
    for given in (example_model, example_model.parent, example_model.with_suffix("")):
        info = source.read(given)
        assert info.format == "legacy"
        assert [s.name for s in info.inputs] == ["x"]
        assert info.inputs[0].shape == (None, 1, 8, 8)
        assert info.inputs[0].dtype == "float32"
        assert info.outputs[0].shape == (None, 10)
        assert info.ops["conv2d"] == 3 and "feed" not in info.ops


def test_pir_json_is_read_without_running():
    model = export_vision_model("squeezenet1_1", "pir", 64)
    info = source.read(model)
    assert info.format == "pir"
    assert info.inputs[0].name == "x" and info.inputs[0].shape == (None, 3, 64, 64)
    assert len(info.outputs) == 1 and info.outputs[0].shape == (None, 1000)
    assert info.ops["conv2d"] > 10


def test_paddle1_directory(paddle1_dir):
    info = source.read(paddle1_dir)
    assert info.format == "paddle1"
    assert info.files.params_file is None
    assert len(info.files.all_files()) == 21  # __model__ + 20 parameters


def test_paddle1_params_combine_to_the_original_bytes(paddle1_dir, example_model, tmp_path):
    from wherry.convert.normalize import to_legacy
    legacy = to_legacy(source.read(paddle1_dir), tmp_path)
    assert legacy.params_file.read_bytes() == example_model.with_suffix(".pdiparams").read_bytes()


def test_missing_params_file(example_model, tmp_path):
    shutil.copy(example_model, tmp_path / "m.pdmodel")
    with pytest.raises(SourceError, match="parameters file .*m.pdiparams is missing"):
        source.read(tmp_path / "m.pdmodel")


def test_missing_paddle1_parameter(paddle1_dir, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(paddle1_dir, broken)
    (broken / "conv2d_0.w_0").unlink()
    with pytest.raises(SourceError, match="parameter file.*missing.*conv2d_0.w_0"):
        source.read(broken)


def test_truncated_model(example_model, tmp_path):
    data = example_model.read_bytes()
    (tmp_path / "m.pdmodel").write_bytes(data[: len(data) // 3])
    shutil.copy(example_model.with_suffix(".pdiparams"), tmp_path / "m.pdiparams")
    with pytest.raises(SourceError, match="not a valid Paddle program|not a Paddle inference program"):
        source.read(tmp_path / "m.pdmodel")


def test_json_that_is_not_a_paddle_program(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"hello": "world"}))
    (tmp_path / "m.pdiparams").write_bytes(b"")
    with pytest.raises(SourceError, match="not a Paddle 3 PIR program"):
        source.read(tmp_path / "m.json")


def test_nothing_there(tmp_path):
    with pytest.raises(SourceError, match="no Paddle model"):
        source.read(tmp_path / "nope")
    with pytest.raises(SourceError, match="holds no Paddle model"):
        source.read(tmp_path)
