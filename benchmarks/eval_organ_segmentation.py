"""Organ-segmentation accuracy: Dice and Jaccard per organ on the held-out synthetic cases, end to end on the
original grid.

    python benchmarks/eval_organ_segmentation.py [--organs liver,lungs] [--out build/organ_seg/eval.json]
        [--update-bundles]

Held-out cases: ``models.organ_segmentation.data.case_specs("test")`` (seeds 9000+, never used in training):
ICRP-110 AM and AF (trunk and head scans) and procedural phantoms, stored at full resolution. For each organ
bundle and each test case holding the organ: the operator's preprocessing (canonical orientation, one body
box per volume, 224 x 304, organ window) over the slices of the organ's true z extent plus 30 mm (what the
operator does with the GrayNet range; here the range is the ground truth's, so range errors are not
counted), sigmoid >= threshold, mapped back (``from_network``) onto the original grid, Dice and Jaccard
against the organ's label (``labels.organ_mask``) over the whole volume. Per organ: mean and range of the
per-case Dice / Jaccard. Timing: seconds per organ per case (one thread), slices run. ``--update-bundles``
writes the figures into each bundle's ``configs/metadata.json``. Synthetic figures say nothing about real CT.

``--real DIR`` (repeatable): a real DICOM series (../shared/data/ct/*) has no reference labels; every organ
model runs over all slices (no range restriction, so false positives outside the organ's level show), and the
benchmark reports each organ's predicted volume and mean HU and renders axial / coronal overlays to
``--png-dir`` for review.
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

from models.organ_segmentation import data as D  # noqa: E402
from models.organ_segmentation.network import load_for_inference  # noqa: E402
from models.organ_segmentation.train import BUNDLES  # noqa: E402
from operators.common.labels import ALL_ORGANS, organ_mask  # noqa: E402
from operators.organ_segmentation import preprocess as pp  # noqa: E402

MARGIN_MM = 30.0


def dice_jaccard(pred: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    inter = float((pred & ref).sum())
    s = float(pred.sum() + ref.sum())
    if s == 0:
        return float("nan"), float("nan")
    return 2.0 * inter / s, inter / (s - inter)


def predict_organ(module, hu_c: np.ndarray, box: pp.Box, window, ks: np.ndarray, threshold: float = 0.5,
                  batch: int = 32) -> np.ndarray:
    """Boolean mask on the canonical grid: the model over slices ``ks`` (other slices empty)."""
    out = np.zeros(hu_c.shape, bool)
    if not len(ks):
        return out
    x = pp.to_network(np.ascontiguousarray(hu_c[ks], np.float32), box, window)
    probs = np.empty_like(x)
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            probs[i:i + batch] = torch.sigmoid(module(torch.from_numpy(x[i:i + batch]).unsqueeze(1)))[:, 0].numpy()
    out[ks] = pp.from_network(probs, box, (len(ks), *hu_c.shape[1:])) >= threshold
    return out


def evaluate(organs: list[str], bundles: Path = BUNDLES, specs=None, log=print) -> dict:
    specs = specs or D.case_specs("test")
    cases = []
    for spec in specs:
        c = D.load_case(D.build_case(spec, full_res=True))
        hu_c = c["hu_c"].astype(np.float32)
        sp = D.spacing_yx(c["affine_c"])
        cases.append((spec, hu_c, c["organs_c"], c["affine_c"], pp.body_box(hu_c, sp)))
    results: dict = {}
    for organ in organs:
        bdir = bundles / organ
        if not (bdir / "models" / "model.ts").is_file():
            log(f"{organ}: no bundle")
            continue
        module, meta = load_for_inference(bdir)
        window, thr = tuple(meta["hu_window"]), float(meta.get("threshold", 0.5))
        per_case = []
        for spec, hu_c, lab_c, aff_c, box in cases:
            ref = organ_mask(lab_c, organ)
            zs = np.nonzero(ref.any(axis=(1, 2)))[0]
            if not len(zs):
                continue
            z_mm = D.slice_z_mm(aff_c, np.arange(hu_c.shape[0]))
            ks = np.nonzero((z_mm >= z_mm[zs[0]] - MARGIN_MM) & (z_mm <= z_mm[zs[-1]] + MARGIN_MM))[0]
            t0 = time.perf_counter()
            pred = predict_organ(module, hu_c, box, window, ks, thr)
            dt = time.perf_counter() - t0
            d, j = dice_jaccard(pred, ref)
            vox_ml = abs(float(np.linalg.det(aff_c[:3, :3]))) / 1000.0
            per_case.append({"case": spec.name, "dice": round(d, 4), "jaccard": round(j, 4), "slices": int(len(ks)),
                             "seconds": round(dt, 3), "ref_ml": round(float(ref.sum()) * vox_ml, 1),
                             "pred_ml": round(float(pred.sum()) * vox_ml, 1)})
        if not per_case:
            log(f"{organ}: absent from every test case")
            continue
        dv = np.array([r["dice"] for r in per_case])
        jv = np.array([r["jaccard"] for r in per_case])
        results[organ] = {"dice_mean": round(float(dv.mean()), 4), "dice_min": round(float(dv.min()), 4),
                          "dice_max": round(float(dv.max()), 4), "jaccard_mean": round(float(jv.mean()), 4),
                          "n_cases": len(per_case), "cases": per_case}
        log(f"{organ:20s} Dice {dv.mean():.3f} ({dv.min():.3f}-{dv.max():.3f})  Jaccard {jv.mean():.3f}  "
            f"n={len(per_case)}  {np.mean([r['seconds'] for r in per_case]):.2f} s/case")
    return results


def real_series(folder: Path, organs: list[str], bundles: Path, png_dir: Path, log=print) -> dict:
    import pydicom

    from operators.common.dicom_series import series_to_volume
    from operators.common.render import render_views

    files = sorted(folder.glob("*.dcm")) or sorted(p for p in folder.rglob("*") if p.is_file())
    ds = [pydicom.dcmread(str(f)) for f in files]
    ds = [d for d in ds if "AXIAL" in list(d.get("ImageType", []))] or ds
    vol = series_to_volume(ds)
    hu_c, aff_c = pp.canonical(vol.hu, vol.affine_lps)
    hu_c = np.ascontiguousarray(hu_c, np.float32)
    box = pp.body_box(hu_c, D.spacing_yx(aff_c))
    labels = np.zeros(hu_c.shape, np.uint8)
    vox_ml = float(np.prod(vol.spacing_mm)) / 1000.0
    out = {"series": folder.name, "shape": list(vol.shape), "spacing_mm": [round(v, 3) for v in vol.spacing_mm],
           "organs": {}}
    ks = np.arange(hu_c.shape[0])
    for organ in organs:
        bdir = bundles / organ
        if not (bdir / "models" / "model.ts").is_file():
            continue
        module, meta = load_for_inference(bdir)
        t0 = time.perf_counter()
        pred = predict_organ(module, hu_c, box, tuple(meta["hu_window"]), ks, float(meta.get("threshold", 0.5)))
        dt = time.perf_counter() - t0
        lid = meta["label_id"]
        labels[pred & (labels == 0)] = lid
        out["organs"][organ] = {"volume_ml": round(float(pred.sum()) * vox_ml, 1),
                                "mean_hu": round(float(hu_c[pred].mean()), 1) if pred.any() else None,
                                "seconds_all_slices": round(dt, 2)}
        log(f"{folder.name} {organ:20s} {out['organs'][organ]}")
    png_dir.mkdir(parents=True, exist_ok=True)
    zc = D.slice_z_mm(aff_c, np.arange(hu_c.shape[0]))
    yc = aff_c[1, 3] + aff_c[1, 1] * (box.y0 + box.y1) / 2.0
    views = [("axial", float(np.percentile(zc, q)), f"{q}% of the scan") for q in (20, 45, 70, 90)]
    views.append(("coronal", float(yc), "body centre"))
    from operators.common.labels import ALL_ORGANS as table

    png = render_views(hu_c, aff_c, png_dir / f"{folder.name}_organs.png", views, labels=labels, label_table=table,
                       title=f"{folder.name}: organ models (synthetic training), not for clinical use")
    out["png"] = str(png)
    return out


def update_bundles(results: dict, bundles: Path = BUNDLES) -> None:
    for organ, r in results.items():
        path = bundles / organ / "configs" / "metadata.json"
        meta = json.loads(path.read_text())
        meta["eval_metrics"] = {"held_out_synthetic": {
            "dice_mean": r["dice_mean"], "dice_min": r["dice_min"], "jaccard_mean": r["jaccard_mean"],
            "n_cases": r["n_cases"], "cases": [c["case"] for c in r["cases"]],
            "protocol": "benchmarks/eval_organ_segmentation.py: end to end on the original grid, slices of the "
                        "true organ extent + 30 mm"}}
        path.write_text(json.dumps(meta, indent=1) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--organs", default="all")
    ap.add_argument("--bundles", default=str(BUNDLES))
    ap.add_argument("--out", default=str(D.CACHE / "eval.json"))
    ap.add_argument("--update-bundles", action="store_true")
    ap.add_argument("--real", type=Path, action="append", default=[], help="a real DICOM series folder")
    ap.add_argument("--png-dir", type=Path, default=D.CACHE / "real")
    ap.add_argument("--no-synthetic", action="store_true", help="only the --real series")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    organs = [o.name for o in ALL_ORGANS] if args.organs == "all" else args.organs.split(",")
    if args.real:
        real = [real_series(f, organs, Path(args.bundles), args.png_dir) for f in args.real]
        (args.png_dir / "real.json").write_text(json.dumps(real, indent=1) + "\n")
        print(f"wrote {args.png_dir / 'real.json'}")
    if args.no_synthetic:
        return 0
    res = evaluate(organs, Path(args.bundles))
    print(f"\n{'organ':20s} {'Dice':>6s} {'Jaccard':>8s} {'n':>3s}")
    for organ, r in res.items():
        print(f"{organ:20s} {r['dice_mean']:6.3f} {r['jaccard_mean']:8.3f} {r['n_cases']:3d}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {out}")
    if args.update_bundles:
        update_bundles(res, Path(args.bundles))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
