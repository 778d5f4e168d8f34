"""Writing training-data cases (``.npz``) so that a stopped run never leaves a truncated case behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def save_npz_atomic(path: str | Path, **arrays) -> Path:
    """``np.savez_compressed`` to ``path`` through ``<name>.part`` (a name no ``*.npz`` glob of a reader matches),
    renamed into place once complete."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    tmp.replace(path)
    return path
