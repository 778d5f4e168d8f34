"""Histories per second per CPU core: TG-195 case 5, 120 kVp, beam angle 0 (CPU backend).

    NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/bench_mc.py --histories 4e6

Reports wall-clock and CPU-time rates: on a shared machine the wall-clock rate per thread understates the
engine (other processes take turns on the cores); histories per CPU second is the per-core throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from operators.mc_dose import tg195 as T  # noqa: E402
from operators.mc_dose.engine import prepare, run_cpu  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--histories", type=float, default=4e6)
    ap.add_argument("--angle", type=int, default=0, help="beam angle index 0..7")
    a = ap.parse_args(argv)
    import numba

    g = T.case5_geometry()
    s = T.case5_source("120kVp", T.reference()["case5"]["angles_deg"][a.angle])
    pre = prepare(g, s)
    run_cpu(g, s, 10_000, n_batches=numba.get_num_threads() * 4, prepared=pre)  # compile / warm up
    c0 = time.process_time()
    r = run_cpu(g, s, int(a.histories), n_batches=numba.get_num_threads() * 8, prepared=pre)
    cpu = time.process_time() - c0
    cores = numba.get_num_threads()
    print(json.dumps({"case": f"TG-195 case 5, 120 kVp, angle index {a.angle}", "histories": r.histories,
                      "seconds": round(r.seconds, 2), "cpu_seconds": round(cpu, 2), "threads": cores,
                      "cpu_count": os.cpu_count(), "load_avg_1min": round(os.getloadavg()[0], 2),
                      "histories_per_second": round(r.histories_per_second),
                      "histories_per_second_per_thread": round(r.histories_per_second / cores),
                      "histories_per_cpu_second": round(r.histories / cpu),
                      "prototype_reference_per_core": 1.4e5, "conservation_error": r.conservation_error}))


if __name__ == "__main__":
    main()
