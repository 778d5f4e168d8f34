"""Loading CorpusCT's MONAI bundles (``models/<model>/``: ``models/model.ts`` TorchScript and
``configs/metadata.json``), with errors a user can act on."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ModelError


def read_bundle_metadata(bundle_dir: str | Path, what: str = "model") -> dict:
    path = Path(bundle_dir) / "configs" / "metadata.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"The {what} bundle in {bundle_dir} has no readable configs/metadata.json ({exc}).") from exc


def bundle_name_version(metadata: dict, default_name: str) -> tuple[str, str]:
    return str(metadata.get("name", default_name)), str(metadata.get("version", "0"))


def load_torchscript_bundle(bundle_dir: str | Path, what: str = "model"):
    """(TorchScript module in eval mode on the CPU, metadata dict) of a bundle; ``ModelError`` naming the
    bundle folder and what is missing or broken."""
    import torch

    bundle_dir = Path(bundle_dir)
    ts = bundle_dir / "models" / "model.ts"
    if not ts.is_file():
        raise ModelError(f"The {what} bundle in {bundle_dir} is incomplete (needs models/model.ts and "
                         "configs/metadata.json).")
    metadata = read_bundle_metadata(bundle_dir, what)
    try:
        module = torch.jit.load(str(ts), map_location="cpu").eval()
    except Exception as exc:  # noqa: BLE001 - any load failure is a model problem for the user
        raise ModelError(f"The {what} model {ts} could not be loaded: {exc}") from exc
    return module, metadata
