"""TG-195 validation of the Monte Carlo engine (CPU or CUDA backend): cases 4.1, 4.2 and 5.

Prints ONE JSON object: every simulated value (eV per source photon), its reference, the relative
deviation and the relative statistical uncertainty (1 sigma, batches).

    .venv/bin/python benchmarks/tg195.py --histories 1e7 [--cases 4.1,4.2,5] [--spectra 120kVp,56.4keV]
        [--estimator expected|analog]    # energy-deposition estimator (engine.ESTIMATORS; default expected)
    python3 benchmarks/tg195.py --backend cuda --histories 2e9      # same physics on a CUDA GPU
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from operators.mc_dose import tg195 as T  # noqa: E402
from operators.mc_dose.engine import ESTIMATORS, prepare, run_cpu, run_cuda  # noqa: E402


def _entry(sim, ref, sd):
    return {"sim": round(float(sim), 6), "ref": float(ref), "rel_dev": round(float(sim / ref - 1), 5),
            "rel_sigma": round(float(sd / sim), 5) if sim > 0 else None}


def case4_1(spec, n, out, run=run_cpu):
    g, _ = T.case4_geometry(rotation=False)
    ref = T.reference()["case4"]["case4_1_static_projection"]
    for coll in (10, 80):
        s = T.case4_source(spec, coll, rotation=False)
        r = run(g, s, n, n_batches=20, seed=41)
        vals = r.mean_kev[:4] * 1000
        sds = r.std_kev[:4] * 1000
        out[f"4.1/{spec}_{coll}mm"] = [_entry(a, b, c) for a, b, c in
                                       zip(vals, ref[f"{spec}_{coll}mm"], sds, strict=True)]
        out.setdefault("_runs", []).append({"case": f"4.1/{spec}_{coll}mm", "histories": r.histories,
                                            "seconds": round(r.seconds, 1), "conservation": r.conservation_error})


def case4_2(spec, n, out, run=run_cpu):
    g, corr = T.case4_geometry(rotation=True)
    ref = T.reference()["case4"]["case4_2_rotation"]["derived_full_rotation_means"]
    for coll in (10, 80):
        s = T.case4_source(spec, coll, rotation=True)
        r = run(g, s, n, n_batches=20, seed=42)
        c, p = r.mean_kev[:2] * 1000 * corr  # mean over the 36 angles = per-history over the rotation
        sc, sp = r.std_kev[:2] * 1000 * corr
        rr = ref[f"{spec}_{coll}mm"]
        ratio_sd = c / p * np.hypot(sc / c, sp / p)
        out[f"4.2/{spec}_{coll}mm"] = {"center_mean": _entry(c, rr["center_mean"], sc),
                                       "periphery_mean": _entry(p, rr["periphery_mean"], sp),
                                       "center_over_periphery": _entry(c / p, rr["center_over_periphery"], ratio_sd)}
        out.setdefault("_runs", []).append({"case": f"4.2/{spec}_{coll}mm", "histories": r.histories,
                                            "seconds": round(r.seconds, 1), "conservation": r.conservation_error})


def case5(spec, n, out, angles, seed_offset=0, run=run_cpu):
    g = T.case5_geometry()
    names = T.reference()["case5"]["organ_order"]
    sims, sds, refs = [], [], []
    for ai in angles:
        ang = T.reference()["case5"]["angles_deg"][ai]
        s = T.case5_source(spec, ang)
        c0 = time.process_time()
        r = run(g, s, n, n_batches=20, seed=50 + ai + seed_offset, prepared=prepare(g, s))
        cpu = time.process_time() - c0
        ref = T.case5_reference(spec, ai)
        share = ref / ref.sum()
        out[f"5/{spec}_{ang}deg"] = {nm: {**_entry(a, b, c), "energy_share": round(float(f), 5)}
                                     for nm, a, b, c, f in zip(names, r.mean_kev[T.CASE5_ORGAN_BINS] * 1000, ref,
                                                               r.std_kev[T.CASE5_ORGAN_BINS] * 1000, share, strict=True)}
        out.setdefault("_runs", []).append({"case": f"5/{spec}_{ang}deg", "histories": r.histories,
                                            "seconds": round(r.seconds, 1), "cpu_seconds": round(cpu, 1),
                                            "conservation": r.conservation_error})
        sims.append(r.mean_kev[T.CASE5_ORGAN_BINS] * 1000)
        sds.append(r.std_kev[T.CASE5_ORGAN_BINS] * 1000)
        refs.append(ref)
    if len(angles) > 1:  # mean over the angles run (all 8: a step-and-shoot rotation), sigma combined
        sim, ref = np.mean(sims, axis=0), np.mean(refs, axis=0)
        sd = np.sqrt(np.sum(np.square(sds), axis=0)) / len(angles)
        key = f"5/{spec}_mean_of_{len(angles)}_angles"
        out[key] = {nm: {**_entry(a, b, c), "energy_share": round(float(b / ref.sum()), 5)}
                    for nm, a, b, c in zip(names, sim, ref, sd, strict=True)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--histories", type=float, default=1e7, help="histories per run (per beam/collimation)")
    ap.add_argument("--cases", default="4.1,4.2,5")
    ap.add_argument("--spectra", default="120kVp,56.4keV")
    ap.add_argument("--angles", default="0,1,2,3,4,5,6,7", help="case 5 angle indices")
    ap.add_argument("--seed-offset", type=int, default=0, help="added to every case 5 seed (independent repeats)")
    ap.add_argument("--backend", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--estimator", choices=ESTIMATORS, default=ESTIMATORS[0])
    a = ap.parse_args(argv)
    n = int(a.histories)
    run = functools.partial(run_cuda if a.backend == "cuda" else run_cpu, estimator=a.estimator)
    if a.backend == "cuda":
        g = T.case5_geometry()
        s = T.case5_source("120kVp", 0.0)
        run_cuda(g, s, 100_000, prepared=prepare(g, s))  # compile, so that no run's time includes it
    out = {"engine": f"corpusct mc_dose ({a.backend.upper()} backend, {a.estimator} estimator)",
           "histories_per_run": n, "units": "eV per source photon",
           "air": f"phantoms in air, transported in a world box (margin {T.WORLD_MARGIN_CM} cm)"}
    t = time.time()
    for spec in a.spectra.split(","):
        if "4.1" in a.cases:
            case4_1(spec, n, out, run)
        if "4.2" in a.cases:
            case4_2(spec, n, out, run)
        if "5" in a.cases.split(","):
            case5(spec, n, out, [int(x) for x in a.angles.split(",")], a.seed_offset, run)
    out["wall_seconds"] = round(time.time() - t, 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
