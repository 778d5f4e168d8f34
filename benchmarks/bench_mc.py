"""Histories per second per CPU core: TG-195 case 5, 120 kVp, beam angle 0 (CPU backend).

    .venv/bin/python benchmarks/bench_mc.py --histories 4e6
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from operators.mc_dose import tg195 as T  # noqa: E402
from operators.mc_dose.engine import prepare, run_cpu  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--histories", type=float, default=4e6)
    a = ap.parse_args(argv)
    import numba

    g = T.case5_geometry()
    s = T.case5_source("120kVp", 0)
    pre = prepare(g, s)
    run_cpu(g, s, 10_000, n_batches=numba.get_num_threads() * 4, prepared=pre)  # compile / warm up
    r = run_cpu(g, s, int(a.histories), n_batches=numba.get_num_threads() * 8, prepared=pre)
    cores = numba.get_num_threads()
    print(json.dumps({"case": "TG-195 case 5, 120 kVp, angle 0", "histories": r.histories,
                      "seconds": round(r.seconds, 2), "threads": cores, "cpu_count": os.cpu_count(),
                      "histories_per_second": round(r.histories_per_second),
                      "histories_per_second_per_core": round(r.histories_per_second / cores),
                      "prototype_reference_per_core": 1.4e5, "conservation_error": r.conservation_error}))


if __name__ == "__main__":
    main()
