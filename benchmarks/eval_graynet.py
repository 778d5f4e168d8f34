"""GrayNet accuracy on held-out synthetic phantoms and a look at the real series.

    python benchmarks/eval_graynet.py [--procedural 14] [--icrp 8] [--crops 4] [--seed 1] [--real]
                                      [--cache build/graynet_eval_cache] [--model models/graynet]

Held-out data: the training generator (models/graynet/data.py) with ``--seed 1`` (seeds 100000+ and 150000+;
training used seed 0; the range selector's settings were tuned on ``--seed 2``). Prints body-part mAUC
(per-slice, over parts present and absent in the set), sex AUC and age / weight MAE per series (age: procedural
phantoms only; ICRP-110 has no age), and range MAE (cm) over the start and end of random field-of-view crops
(15-60 cm of z) mapped onto the phantom of the true sex, against the crop's true ends mapped through the
phantom's true landmarks, per mapping method (auto = the profile fit; landmarks / regression: the first
version's mappings), with the calibration of the stated uncertainty (share of ends within 1 and 2 stated
uncertainties). Crops reuse the full series' slice predictions. ``--cache``: keeps the preprocessed held-out
slices (int16 HU) so that later runs skip the phantom synthesis. ``--real``: runs apps/range_selector on
../shared/data/ct/* into build/eval_real/ (look at range.png). Figures are for synthetic data only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.graynet import data as gdata  # noqa: E402
from operators.common.paths import REPO_ROOT, shared_data_dir  # noqa: E402
from operators.graynet_range.inference import GrayNetModel, SlicePredictions  # noqa: E402
from operators.graynet_range.landmark_map import map_z  # noqa: E402
from operators.graynet_range.preprocess import prepare_slices  # noqa: E402
from operators.graynet_range.range_selector import select_range  # noqa: E402
from operators.graynet_range.reference import reference_landmarks  # noqa: E402


def auc(y: np.ndarray, s: np.ndarray) -> float:
    y = np.asarray(y, bool)
    if y.all() or not y.any():
        return float("nan")
    from scipy.stats import rankdata
    r = rankdata(s)
    n1, n0 = y.sum(), (~y).sum()
    return float((r[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def crop(pred: SlicePredictions, idx: np.ndarray) -> SlicePredictions:
    return SlicePredictions(pred.slice_z_mm[idx], pred.part_probabilities[idx], pred.sex_logit[idx],
                            pred.age_years_per_slice[idx], pred.weight_kg_per_slice[idx], pred.ref_z_mm[idx], {})


def held_out_series(kind: str, seed: int, cache: Path | None):
    """(slices, z, body parts per slice (matrix), landmarks, sex, age, weight) of one held-out series."""
    f = cache / f"{kind}_{seed}.npz" if cache else None
    if f is not None and f.exists():
        c = np.load(f)
        return (c["x"], c["z"], c["parts"], json.loads(str(c["lm"])), str(c["sex"]), float(c["age"]),
                float(c["weight"]))
    _, ct, parts, lm, sex, age, weight = gdata.VOLUMES[kind](seed)
    x, z = prepare_slices(ct.hu, ct.affine_lps)
    pm = gdata.parts_matrix(parts)
    if f is not None:
        f.parent.mkdir(parents=True, exist_ok=True)
        x = np.clip(np.round(x), -1024, 3000).astype(np.int16)
        np.savez(f, x=x, z=z, parts=pm, lm=json.dumps(lm), sex=sex, age=age, weight=weight)
    return x, z, pm, lm, sex, age, weight


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--procedural", type=int, default=14)
    ap.add_argument("--icrp", type=int, default=8)
    ap.add_argument("--crops", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--real", action="store_true")
    ap.add_argument("--out", default="build/eval_graynet.json")
    ap.add_argument("--cache", default="", help="folder for the preprocessed held-out slices")
    ap.add_argument("--model", default=str(REPO_ROOT / "models" / "graynet"), help="bundle folder")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.model.endswith(".ts"):  # a bare TorchScript file (a candidate before it enters the bundle)
        model = GrayNetModel(torch.jit.load(a.model).eval(), {}, Path(a.model))
    else:
        model = GrayNetModel.from_bundle(a.model)
    rng = np.random.default_rng(a.seed + 1000)
    jobs = gdata.jobs(a.procedural, a.icrp, a.seed, Path("."))
    cache = Path(a.cache) if a.cache else None
    probs, truth, series = [], [], []
    range_err = {"auto": [], "landmarks": [], "regression": []}
    stated, crop_rows = [], []
    t0 = time.time()
    for kind, seed, _ in jobs:
        x, z, pm, lm, sex, age, weight = held_out_series(kind, seed, cache)
        pred = model.predict_prepared(x, z)
        probs.append(pred.part_probabilities)
        truth.append(pm)
        series.append({"kind": kind, "seed": seed, "sex": sex, "p_male": pred.sex_probability, "age": age,
                       "age_pred": pred.age_years, "weight": weight, "weight_pred": pred.weight_kg})
        ph = "AM" if sex == "M" else "AF"
        ref = reference_landmarks(ph)
        z = pred.slice_z_mm
        dz = abs(float(np.median(np.diff(z))))
        for _ in range(a.crops):
            length = rng.uniform(150, 600)
            n_len = max(int(length / dz), 4)
            if n_len >= len(z):
                idx = np.arange(len(z))
            else:
                k0 = int(rng.integers(0, len(z) - n_len))
                idx = np.arange(k0, k0 + n_len)
            true_ends = map_z(np.array([z[idx].min(), z[idx].max()]), lm, ref)
            for m in range_err:
                sr = select_range(crop(pred, idx), phantom=ph, method=m)
                got = np.array([sr.start_cm, sr.end_cm]) * 10
                range_err[m].extend(np.abs(got - true_ends).tolist())
                if m == "auto":
                    stated.extend([sr.uncertainty_cm * 10] * 2)
                    crop_rows.append({"series": f"{kind}_{seed}", "true_cm": np.round(true_ends / 10, 1).tolist(),
                                      "got_cm": [round(sr.start_cm, 1), round(sr.end_cm, 1)],
                                      "uncertainty_cm": round(sr.uncertainty_cm, 1)})
        print(f"{kind} {seed}: {len(z)} slices, sex {sex} p_male {pred.sex_probability:.2f}, age {age:.0f}/"
              f"{pred.age_years:.0f}, weight {weight:.0f}/{pred.weight_kg:.0f}", flush=True)
    P, T = np.concatenate(probs), np.concatenate(truth)
    part_auc = {gdata.PART_NAMES[j]: auc(T[:, j], P[:, j]) for j in range(24)}
    vals = [v for v in part_auc.values() if np.isfinite(v)]
    s_true = np.array([s["sex"] == "M" for s in series])
    s_p = np.array([s["p_male"] for s in series])
    proc = [s for s in series if s["kind"] == "procedural"]
    res = {
        "held_out_series": len(series), "slices": int(len(P)),
        "body_part_mAUC": round(float(np.mean(vals)), 4), "body_part_auc": {k: round(v, 4) for k, v in part_auc.items()},
        "body_part_slice_accuracy": round(float(((P > 0.5) == T.astype(bool)).mean()), 4),
        "sex_auc": round(auc(s_true, s_p), 4), "sex_accuracy": round(float(np.mean((s_p > 0.5) == s_true)), 3),
        "age_mae_years": round(float(np.mean([abs(s["age"] - s["age_pred"]) for s in proc])), 2),
        "weight_mae_kg": round(float(np.mean([abs(s["weight"] - s["weight_pred"]) for s in series])), 2),
        "range_mae_cm": {m: round(float(np.mean(v)) / 10, 2) for m, v in range_err.items()},
        "range_median_ae_cm": {m: round(float(np.median(v)) / 10, 2) for m, v in range_err.items()},
        "range_p90_ae_cm": {m: round(float(np.percentile(v, 90)) / 10, 2) for m, v in range_err.items()},
        "range_crops": len(range_err["auto"]) // 2,
        "range_uncertainty": {"mean_stated_cm": round(float(np.mean(stated)) / 10, 2),
                              "share_within_1": round(float(np.mean(np.array(range_err["auto"]) <= np.array(stated))), 3),
                              "share_within_2": round(float(np.mean(np.array(range_err["auto"]) <= 2 * np.array(stated))), 3)},
        "seconds": round(time.time() - t0, 1),
    }
    print(json.dumps({k: v for k, v in res.items() if k != "body_part_auc"}, indent=1))
    res["crops"] = crop_rows
    print("per-part AUC:", json.dumps(res["body_part_auc"]))
    if a.real:
        res["real"] = {}
        for d in sorted((shared_data_dir() / "ct").glob("*")):
            out = REPO_ROOT / "build" / "eval_real" / d.name
            r = subprocess.run([sys.executable, str(REPO_ROOT / "apps" / "range_selector"), "-i", str(d), "-o", str(out),
                                "-l", "WARNING"], capture_output=True, text=True, cwd=REPO_ROOT)
            if r.returncode != 0:
                print(d.name, "FAILED", r.stderr[-500:])
                continue
            j = json.loads((out / "results.json").read_text())
            res["real"][d.name] = {k: j[k] for k in ("covered_body_parts", "body_part_examined", "scan_range_icrp110_cm",
                                                     "age_years", "sex", "sex_probability", "weight_kg", "timing_s")}
            print(d.name, json.dumps(res["real"][d.name]))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
