"""Body-composition accuracy: Dice per class on held-out synthetic phantoms, and on a real series the agreement
with the paper's threshold-and-rules reference (its own first labelling step).

    python benchmarks/eval_body_composition.py [--n 6] [--seed 1000] [--real DIR] [--out build/eval_bodycomp]
    python benchmarks/eval_body_composition.py --icrp --n 6 --seed 1000      # ICRP-110 held-out cases instead

Held-out: models/body_composition/data.py case parameters with ``--seed 1000`` (training used seed 0: other
anatomy variation, noise and patient/scan parameters). Dice on the native CT grid against the phantom's
body_composition labels, with the HU refinement (operators/body_composition/refine.py, what the operator
uses) and without it (network logits up-sampled from 4 mm / 5 mm, argmax), from one network pass. ``--real``: loads the DICOM series, predicts,
builds the threshold reference inside the body contour (muscle -29..150 HU, fat -190..-30 HU, bone > 250 HU)
and prints agreement Dice for muscle, all fat (SF + AVF) and bone (refined and plain); writes the report PNGs. Synthetic figures
say nothing about real CT; the threshold reference is itself rough (organs fall in the muscle HU range).
``--icrp``: the held-out cases are CT synthesised from the ICRP-110 phantoms instead (data.py ``icrp_case_params``
with ``--seed``, regions abdomen, abdomen, trunk, trunk, ...: AM for even, AF for odd case numbers), truth from
models/body_composition/icrp_labels.py resampled with the HU (data.py ``synthesize_icrp_case``).
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.body_composition import data as bdata  # noqa: E402
from models.phantoms import generate_phantom  # noqa: E402
from operators.body_composition.analysis import analyse  # noqa: E402
from operators.body_composition.inference import BodyCompositionModel  # noqa: E402
from operators.body_composition.metrics import ID  # noqa: E402
from operators.body_composition.preprocess import ModelGrid  # noqa: E402
from operators.body_composition.report import render_report  # noqa: E402
from operators.common.labels import BODY_COMPOSITION  # noqa: E402
from operators.common.paths import REPO_ROOT  # noqa: E402


def dice(a: np.ndarray, b: np.ndarray) -> float:
    s = a.sum() + b.sum()
    return float(2 * (a & b).sum() / s) if s else float("nan")


ICRP_EVAL_REGIONS = ("abdomen", "trunk")


def _heldout_case(i: int, seed: int, cache: Path | None, icrp: bool = False):
    """(CTVolume, body_composition labels, landmarks, params) of held-out case i (pickled under ``cache``);
    ``icrp``: an ICRP-110 case (params: data.IcrpCase)."""
    f = None if cache is None else cache / f"heldout_{'icrp_' if icrp else ''}{seed}_{i:03d}.pkl"
    if f is not None and f.is_file():
        with open(f, "rb") as fh:
            return pickle.load(fh)
    if icrp:
        p = bdata.icrp_case_params(i, seed, regions=ICRP_EVAL_REGIONS)
        s = bdata.synthesize_icrp_case(p)
        case = (s.ct, s.organs, s.landmarks_mm, p)
    else:
        p = bdata.case_params(i, seed)
        ph = generate_phantom(p)
        case = (ph.ct, ph.body_composition, ph.landmarks_mm, p)
    if f is not None:
        f.parent.mkdir(parents=True, exist_ok=True)
        with open(f, "wb") as fh:
            pickle.dump(case, fh)
    return case


def synthetic(model, n: int, seed: int, cache: Path | None = None, icrp: bool = False) -> dict:
    """Dice per class with (``refined``) and without (``plain``: up-sampled argmax) the HU refinement; one
    network pass per case."""
    per = {kind: {lab.name: [] for lab in BODY_COMPOSITION} for kind in ("plain", "refined")}
    waist, seconds = [], []
    for i in range(n):
        ct, truth, landmarks, p = _heldout_case(i, seed, cache, icrp)
        grid = ModelGrid.of(ct.shape, ct.affine_lps)
        t = time.time()
        logits = model.logits_model_grid(grid.to_model(ct.hu))
        for kind in ("plain", "refined"):
            pred = model.to_native(grid, logits, ct.hu, refine=kind == "refined")
            for lab in BODY_COMPOSITION:
                d = dice(pred == lab.id, truth == lab.id)
                if d == d:
                    per[kind][lab.name].append(d)
        seconds.append(round(time.time() - t, 1))
        # waist metrics: predicted (refined) mask + bone-anatomy waist vs ground truth labels + true landmarks
        r_pred = analyse(ct, pred).to_json()
        r_true = analyse(ct, truth, landmarks=landmarks).to_json()
        waist.append({"region": p.region, "pred": r_pred["waist"], "true": r_true["waist"],
                      "status_pred": r_pred["status"], "status_true": r_true["status"]})
        print(f"case {i} {getattr(p, 'phantom', '')} {p.region:8s}", {k: round(v[-1], 3) for k, v in per["refined"].items() if v}, flush=True)
    summary = {kind: {k: {"mean": round(float(np.mean(v)), 3), "min": round(float(np.min(v)), 3), "n": len(v)}
                      for k, v in d.items() if v} for kind, d in per.items()}
    return {"dice": summary, "waist": waist, "seconds_per_case": seconds}


def threshold_reference(hu: np.ndarray) -> dict[str, np.ndarray]:
    body = np.zeros(hu.shape, bool)
    for k in range(hu.shape[0]):
        m = ndimage.binary_fill_holes(ndimage.binary_opening(hu[k] > -300, iterations=2))
        lab, nl = ndimage.label(m)
        if nl:
            sizes = ndimage.sum(m, lab, range(1, nl + 1))
            m = np.isin(lab, np.nonzero(sizes > 0.05 * sizes.max())[0] + 1)
        body[k] = m
    return {"muscle": body & (hu >= -29) & (hu <= 150), "fat": body & (hu >= -190) & (hu <= -30),
            "bone": body & (hu > 250)}


def real(model, folder: Path, out: Path) -> dict:
    import pydicom

    from operators.common.dicom_series import series_to_volume

    files = sorted(folder.glob("*.dcm")) or sorted(p for p in folder.rglob("*") if p.is_file())
    ds = [pydicom.dcmread(str(f)) for f in files]
    ds = [d for d in ds if "AXIAL" in list(d.get("ImageType", []))] or ds
    vol = series_to_volume(ds)
    t = time.time()
    grid = ModelGrid.of(vol.shape, vol.affine_lps)
    logits = model.logits_model_grid(grid.to_model(vol.hu))
    ref = threshold_reference(vol.hu)
    agree, preds = {}, {}
    for kind in ("plain", "refined"):
        pred = preds[kind] = model.to_native(grid, logits, vol.hu, refine=kind == "refined")
        agree[kind] = {
            "muscle": round(dice(pred == ID["muscle"], ref["muscle"]), 3),
            "fat_sf_plus_avf": round(dice(np.isin(pred, [ID["subcutaneous_fat"], ID["abdominal_visceral_fat"]]),
                                          ref["fat"]), 3),
            "bone": round(dice(pred == ID["bone"], ref["bone"]), 3)}
    pred = preds["refined"]
    res = analyse(vol, pred)
    out.mkdir(parents=True, exist_ok=True)
    render_report(vol.hu, pred, vol.affine_lps, res, out / f"{folder.name}_report.png")
    render_report(vol.hu, preds["plain"], vol.affine_lps, analyse(vol, preds["plain"]),
                  out / f"{folder.name}_report_plain.png", title="CorpusCT body composition (no HU refinement)")
    vox = float(np.prod(vol.spacing_mm)) / 1000.0
    hu_means = {lab.name: round(float(vol.hu[pred == lab.id].mean()), 1) for lab in BODY_COMPOSITION
                if (pred == lab.id).any()}
    return {"series": folder.name, "shape": list(vol.shape), "spacing_mm": list(vol.spacing_mm),
            "threshold_agreement_dice": agree, "mean_hu_per_predicted_class": hu_means,
            "volumes_cm3": {lab.name: round(float((pred == lab.id).sum()) * vox, 1) for lab in BODY_COMPOSITION},
            "status": res.status, "reason": res.reason, "waist": res.waist, "seconds": round(time.time() - t, 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--real", type=Path, action="append", default=[])
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "eval_bodycomp")
    ap.add_argument("--no-synthetic", action="store_true")
    ap.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "body_composition", help="bundle folder")
    ap.add_argument("--cache", type=Path, default=REPO_ROOT / "build" / "bodycomp_heldout",
                    help="pickled held-out phantoms (generated on first use)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--icrp", action="store_true", help="held-out cases from the ICRP-110 phantoms (data.py source icrp)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = BodyCompositionModel.from_bundle(a.model)
    out = {}
    if not a.no_synthetic:
        out["synthetic"] = synthetic(model, a.n, a.seed, a.cache, a.icrp)
        print(json.dumps(out["synthetic"]["dice"], indent=1))
    out["real"] = [real(model, f, a.out) for f in a.real]
    for r in out["real"]:
        print(json.dumps(r, indent=1))
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "eval.json").write_text(json.dumps(out, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
