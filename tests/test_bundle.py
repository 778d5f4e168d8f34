"""The shared bundle loader turns every broken bundle into a ModelError that names the problem."""

import json

import pytest
import torch

from operators.common.bundle import bundle_name_version, load_torchscript_bundle, read_bundle_metadata
from operators.common.errors import ModelError


def _bundle(tmp_path, model_bytes=None, metadata="{}"):
    (tmp_path / "models").mkdir()
    (tmp_path / "configs").mkdir()
    if model_bytes is not None:
        (tmp_path / "models" / "model.ts").write_bytes(model_bytes)
    if metadata is not None:
        (tmp_path / "configs" / "metadata.json").write_text(metadata)
    return tmp_path


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelError, match="models/model.ts"):
        load_torchscript_bundle(_bundle(tmp_path), "GrayNet")


def test_corrupt_model_file(tmp_path):
    with pytest.raises(ModelError, match="could not be loaded"):
        load_torchscript_bundle(_bundle(tmp_path, b"not a torchscript archive"), "GrayNet")


def test_unreadable_metadata(tmp_path):
    with pytest.raises(ModelError, match="metadata.json"):
        read_bundle_metadata(_bundle(tmp_path, b"x", metadata="{not json"), "GrayNet")


def test_valid_bundle_round_trip(tmp_path):
    b = _bundle(tmp_path, None, json.dumps({"name": "tiny", "version": "1.2.3"}))
    torch.jit.script(torch.nn.Linear(2, 1)).save(str(b / "models" / "model.ts"))
    module, md = load_torchscript_bundle(b)
    assert module(torch.zeros(1, 2)).shape == (1, 1)
    assert bundle_name_version(md, "x") == ("tiny", "1.2.3")
