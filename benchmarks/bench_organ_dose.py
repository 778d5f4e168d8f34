"""Organ-dose speed on one CPU core: radiomics features per organ and network prediction per region on synthetic
ICRP-110 scans, and the cost of the Monte Carlo training cohort (from its case files).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_organ_dose.py [--cohort build/organ_dose/cohort]

Prints JSON: seconds per organ (pyradiomics, 107 features, 1 x 1 x 5 mm), network seconds per region (target
< 1 s), and the cohort's measured Monte Carlo histories, seconds and histories/s. A GPU time is only given as
histories / an assumed rate (``--gpu-rate``): no GPU was measured here.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.phantoms import icrp110 as I  # noqa: E402
from operators.common.dose_parameters import DoseParameters  # noqa: E402
from operators.common.paths import REPO_ROOT  # noqa: E402
from operators.radiomics_dose import features as F  # noqa: E402
from operators.radiomics_dose.inference import OrganDoseModel, predict_organ_doses  # noqa: E402
from operators.radiomics_dose.regions import REGIONS  # noqa: E402

RANGES = {"head": ("mandible_bottom", -15, "vertex", 10), "chest": ("lung_base", -30, "lung_apex", 20),
          "abdomen": ("iliac_crest", -20, "diaphragm_dome", 20)}


def cohort_cost(cohort: Path, gpu_rate: float) -> dict:
    files = sorted(cohort.glob("case_*.npz"))
    if not files:
        return {"cases": 0}
    infos = [json.loads(str(np.load(f)["info"])) for f in files]
    hist = sum(i["histories"] for i in infos)
    mc = sum(i["mc_seconds"] for i in infos)
    feat = sum(i["feature_seconds"] for i in infos)
    synth = sum(i["synth_seconds"] for i in infos)
    return {"cases": len(files), "patients": len({i["patient"]["index"] for i in infos}), "histories": hist,
            "mc_seconds": round(mc, 1), "histories_per_second_one_core": round(hist / mc),
            "feature_seconds": round(feat, 1), "synthesis_seconds": round(synth, 1),
            "total_minutes": round((mc + feat + synth) / 60, 1),
            "gpu_estimate": {"assumed_histories_per_second": gpu_rate, "mc_seconds": round(hist / gpu_rate, 1),
                             "note": "assumption, not a measurement (no GPU was lent)"}}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--cohort", default=str(REPO_ROOT / "models" / "organ_dose" / "data" / "cohort"))
    ap.add_argument("--bundle", default=str(REPO_ROOT / "models" / "organ_dose"))
    ap.add_argument("--gpu-rate", type=float, default=5e7)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    lm = I.landmarks_mm("AM")
    model = OrganDoseModel(a.bundle) if (Path(a.bundle) / "models" / "scalers.json").exists() else None
    out = {"regions": {}}
    for region, (lo, dlo, hi, dhi) in RANGES.items():
        s = I.synthesize_ct("AM", I.SynthesisParams(seed=5, z_range_mm=(lm[lo] + dlo, lm[hi] + dhi)))
        t = time.perf_counter()
        feats = F.region_features(s.ct.hu, s.ct.spacing_mm, s.organs, REGIONS[region].organs)
        r = {"shape": list(s.ct.shape), "features_seconds": round(time.perf_counter() - t, 2),
             "per_organ_seconds": {k: round(v.seconds, 3) for k, v in feats.items()},
             "status": {k: v.status for k, v in feats.items()}}
        if model is not None:
            dp = DoseParameters("header", 120.0, 10.0, None, REGIONS[region].ctdi_phantom_cm, None)
            res = predict_organ_doses(model, s.ct.hu, s.ct.spacing_mm, s.organs, dp, regions=[region],
                                      affine_lps=s.ct.affine_lps)
            r["network_seconds"] = res.timing_s[f"network_{region}"]
            r["total_seconds"] = res.timing_s["total"]
            r["doses_mgy_at_10mgy"] = {k: v["dose"] for k, v in res.organ_doses_mgy.items()}
        out["regions"][region] = r
    out["cohort"] = cohort_cost(Path(a.cohort), a.gpu_rate)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
