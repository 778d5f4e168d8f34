"""Provenance carried by every result (DESIGN.md): code version and, per result, the models used."""

from __future__ import annotations

import functools
import subprocess
from importlib import metadata

from .paths import REPO_ROOT

SOFTWARE_NAME = "CorpusCT"
NOT_FOR_CLINICAL_USE = "Research use only - not for clinical use"


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Package version, plus the git commit when running from a checkout (e.g. ``0.1.0+g1a2b3c4``)."""
    try:
        version = metadata.version("corpusct")
    except metadata.PackageNotFoundError:
        version = "0.0.0"
    try:
        commit = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{version}+g{commit}" if commit else version


def provenance(app: str, models: dict[str, str] | None = None) -> dict:
    return {"software": SOFTWARE_NAME, "code_version": code_version(), "app": app, "models": models or {},
            "disclaimer": NOT_FOR_CLINICAL_USE}
