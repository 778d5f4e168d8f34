"""dciodvfy, the reference DICOM IOD validator (dicom3tools), as a test helper shared by every test module."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

needs_dciodvfy = pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy (dicom3tools) not "
                                    "installed; CI installs it (apt-get install dicom3tools)")


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """(error lines, warning lines) of dciodvfy on one file; fails the test if dciodvfy itself aborted."""
    r = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=120)
    lines = (r.stdout + r.stderr).splitlines()
    assert r.returncode == 0 or lines, f"dciodvfy failed on {Path(path).name}: {r.returncode}"
    assert not any("Assertion" in ln or ln.startswith("Abort") for ln in lines), lines
    return [ln for ln in lines if ln.startswith("Error")], [ln for ln in lines if ln.startswith("Warning")]
