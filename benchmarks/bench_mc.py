"""Monte Carlo throughput on TG-195 case 5, 120 kVp, one beam angle: histories per second per CPU core
(CPU backend) or per GPU (CUDA backend), with CUDA checked against the CPU on the same set-up.

    NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/bench_mc.py --histories 4e6 [--estimator analog]
    python3 benchmarks/bench_mc.py --backend cuda --histories 2e9 --check-cpu 2e7     # on a GPU machine

CPU: reports wall-clock and CPU-time rates: on a shared machine the wall-clock rate per thread understates
the engine (other processes take turns on the cores); histories per CPU second is the per-core throughput.
CUDA: the kernel is compiled by a small warm-up launch first, so the timed launch is transport only.
``--check-cpu N`` also runs N histories on the CPU backend and reports, per organ, the difference between
the backends in units of their combined standard error (the issue's "CUDA and CPU equal within 3 sigma").
``--estimator`` picks the energy-deposition estimator (engine.ESTIMATORS); the CPU run reports each organ's
relative 1-sigma and figure of merit 1 / (sigma_rel^2 x CPU seconds), which compares estimators at equal cost.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from operators.mc_dose import tg195 as T  # noqa: E402
from operators.mc_dose.engine import ESTIMATORS, prepare, run_cpu, run_cuda  # noqa: E402


def _cpu(g, s, pre, n, estimator):
    import numba

    threads = numba.get_num_threads()
    run_cpu(g, s, 10_000, n_batches=threads * 4, prepared=pre, estimator=estimator)  # compile / warm up
    c0 = time.process_time()
    r = run_cpu(g, s, n, n_batches=max(threads * 8, 32), prepared=pre, estimator=estimator)
    cpu = time.process_time() - c0
    rel = r.rel_std[T.CASE5_ORGAN_BINS]
    organs = {nm: {"rel_sigma": round(float(x), 5), "figure_of_merit": round(float(1.0 / (x * x * cpu)), 1)}
              for nm, x in zip(T.reference()["case5"]["organ_order"], rel, strict=True)}
    return r, {"estimator": estimator, "organs": organs, "threads": threads, "cpu_count": os.cpu_count(),
               "load_avg_1min": round(os.getloadavg()[0], 2),
               "histories": r.histories, "seconds": round(r.seconds, 2), "cpu_seconds": round(cpu, 2),
               "histories_per_second": round(r.histories_per_second),
               "histories_per_second_per_thread": round(r.histories_per_second / threads),
               "histories_per_cpu_second": round(r.histories / cpu),
               "prototype_reference_per_core": 1.4e5, "conservation_error": r.conservation_error}


def _cuda(g, s, pre, n, estimator):
    from numba import cuda

    run_cuda(g, s, 1_000_000, prepared=pre, estimator=estimator)  # compile
    r = run_cuda(g, s, n, prepared=pre, seed=11, estimator=estimator)
    name = cuda.get_current_device().name
    return r, {"gpu": name.decode() if isinstance(name, bytes) else str(name), "histories": r.histories,
               "seconds": round(r.seconds, 3),
               "histories_per_second": round(r.histories_per_second), "target_per_second": 1e8,
               "conservation_error": r.conservation_error}


def _agreement(a, b, names):
    """per organ: (a - b) / sqrt(sa^2 + sb^2) for organs with at least 0.1 % of the scored energy."""
    k = T.CASE5_ORGAN_BINS
    ma, mb = a.mean_kev[k], b.mean_kev[k]
    z = (ma - mb) / np.sqrt(a.std_kev[k] ** 2 + b.std_kev[k] ** 2)
    share = mb / mb.sum()
    rows = {nm: {"cuda_ev": round(float(x * 1000), 6), "cpu_ev": round(float(y * 1000), 6), "z": round(float(q), 2),
                 "energy_share": round(float(f), 5)} for nm, x, y, q, f in zip(names, ma, mb, z, share, strict=True)}
    used = share >= 1e-3
    return {"organs": rows, "max_abs_z_organs_ge_0.1pct": round(float(np.abs(z[used]).max()), 2),
            "n_compared": int(used.sum())}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--histories", type=float, default=4e6)
    ap.add_argument("--angle", type=int, default=0, help="beam angle index 0..7")
    ap.add_argument("--backend", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--check-cpu", type=float, default=0, help="CUDA only: also run this many CPU histories and compare")
    ap.add_argument("--estimator", choices=ESTIMATORS, default=ESTIMATORS[0])
    a = ap.parse_args(argv)
    g = T.case5_geometry()
    s = T.case5_source("120kVp", T.reference()["case5"]["angles_deg"][a.angle])
    pre = prepare(g, s)
    out = {"case": f"TG-195 case 5, 120 kVp, angle index {a.angle}", "backend": a.backend}
    if a.backend == "cpu":
        _, out["cpu"] = _cpu(g, s, pre, int(a.histories), a.estimator)
    else:
        r, out["cuda"] = _cuda(g, s, pre, int(a.histories), a.estimator)
        if a.check_cpu:
            c, out["cpu"] = _cpu(g, s, pre, int(a.check_cpu), a.estimator)
            out["cuda_vs_cpu"] = _agreement(r, c, T.reference()["case5"]["organ_order"])
    print(json.dumps(out))


if __name__ == "__main__":
    main()
