"""Locations of things outside the package: the shared reference data and the repository root."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_data_dir() -> Path:
    """``$CORPUSCT_DATA`` or ``../shared/data`` beside the repository (see ../shared/data/README.md).
    The path may not exist (a fresh clone elsewhere): callers check and say so."""
    env = os.environ.get("CORPUSCT_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"
