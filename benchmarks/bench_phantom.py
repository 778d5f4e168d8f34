"""Procedural phantom benchmark: generation time of the default whole-body demo phantom and of a small
abdomen case, and the time to write the demo study (DICOM + labels). Prints figures; not part of CI timing.

    .venv/bin/python benchmarks/bench_phantom.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.phantoms import DEMO_PARAMS, PhantomParams, generate_phantom, write_demo_study  # noqa: E402

SMALL = PhantomParams(seed=1, region="abdomen", matrix=128, slice_thickness_mm=5.0)


def _timed(fn, *a, **kw):
    t0 = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t0


def main() -> None:
    for name, params in (("default demo (whole body)", DEMO_PARAMS), ("small abdomen", SMALL)):
        ph, dt = _timed(generate_phantom, params)
        nz, ny, nx = ph.ct.shape
        sp = "/".join(f"{v:.2f}" for v in ph.ct.spacing_mm)
        print(f"phantom {name}: {nz} x {ny} x {nx} voxels (spacing z/y/x {sp} mm), {dt:.2f} s "
              f"[{', '.join(f'{k} {v:.2f} s' for k, v in ph.timings_s.items())}]")
        with tempfile.TemporaryDirectory() as d:
            st, dw = _timed(write_demo_study, ph, d)
            n = sum(1 for _ in st.dicom_dir.iterdir())
            mb = sum(f.stat().st_size for f in Path(d).rglob("*") if f.is_file()) / 1e6
            print(f"demo study write {name}: {n} DICOM files + labels, {mb:.0f} MB, {dw:.2f} s")


if __name__ == "__main__":
    main()
