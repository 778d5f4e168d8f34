"""Body-composition speed and memory: network + resampling + metrics for a 200-slice scan on this CPU.

    python benchmarks/bench_body_composition.py [--slices 200] [--matrix 512] [--threads 2] [--overlap-z 0.25]
                                                [--no-refine] [--model DIR]

Input: the procedural phantom (whole body, 5 mm slices) cut to ``--slices`` slices around the waist at a
512 x 512 matrix (real-CT size). Prints seconds per stage (postprocess = the HU refinement back to the CT
grid, refine.py, or with --no-refine the plain logits up-sampling), peak resident memory (ru_maxrss) and the
1-minute load average before and after (the CPU is shared: timings are only comparable at a low load).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.phantoms import PhantomParams, generate_phantom  # noqa: E402
from operators.body_composition.analysis import analyse  # noqa: E402
from operators.body_composition.inference import OVERLAP_Z, BodyCompositionModel  # noqa: E402
from operators.common.paths import REPO_ROOT  # noqa: E402
from operators.common.volume import CTVolume  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--slices", type=int, default=200)
    ap.add_argument("--matrix", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--overlap-z", type=float, default=None, help="sliding-window z overlap (default: inference.py)")
    ap.add_argument("--no-refine", action="store_true")
    ap.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "body_composition")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ph = generate_phantom(PhantomParams(seed=3, region="whole", matrix=a.matrix // 2, slice_thickness_mm=5.0))
    k0 = max(0, int(np.argmin(np.abs(ph.ct.slice_z_mm - ph.landmarks_mm["l3"]))) - a.slices // 2)
    hu = ph.ct.hu[k0:k0 + a.slices]
    hu = np.repeat(np.repeat(hu, 2, axis=1), 2, axis=2)  # 512 x 512 matrix
    aff = ph.ct.affine_lps.copy()
    aff[:3, :2] /= 2
    aff[:3, 3] += ph.ct.affine_lps[:3, 2] * k0
    vol = CTVolume(hu, aff, ph.ct.meta)
    model = BodyCompositionModel.from_bundle(a.model)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load0 = os.getloadavg()[0]
    t, cpu0 = time.time(), time.process_time()
    kw = {} if a.overlap_z is None else {"overlap_z": a.overlap_z}
    labels, timing = model.predict(vol, refine=not a.no_refine, **kw)
    t1 = time.time()
    res = analyse(vol, labels)
    t2 = time.time()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cpu = time.process_time() - cpu0
    print(f"scan {vol.shape} spacing {tuple(round(s, 2) for s in vol.spacing_mm)} mm, {a.threads} threads, "
          f"refine {not a.no_refine}, overlap_z {a.overlap_z if a.overlap_z is not None else OVERLAP_Z}, "
          f"load average {load0:.1f} -> {os.getloadavg()[0]:.1f}")
    print(f"predict {t1 - t:.1f} s ({timing}); metrics {t2 - t1:.1f} s; total {t2 - t:.1f} s; status {res.status}")
    print(f"process CPU time {cpu:.1f} s over {a.threads} threads (the wall time on an idle CPU is about CPU time / "
          "threads or more)")
    print(f"peak RSS {rss:.0f} MiB (before inference, with the volume loaded: {rss0:.0f} MiB)")


if __name__ == "__main__":
    main()
