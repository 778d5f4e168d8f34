"""Anchor post-process: Dice per organ with and without it (rules only, components only, both), to decide per
organ whether it is enabled by default (operators/anchor_postprocess/rules.py ``DEFAULT_ENABLED``).

    python benchmarks/eval_anchor_postprocess.py --mode corrupted [--n 6] [--seed 5000]
    python benchmarks/eval_anchor_postprocess.py --mode models [--n 4] [--seed 7000] [--models models]

Cases: procedural phantoms (models.phantoms, seeds ``seed + i``: never used for training, which draws its own
seeds), regions cycling whole / abdomen / chest / pelvis, both sexes, 128 x 128 matrix, 5 mm slices.

* ``corrupted``: the ground-truth label map with deliberate errors: for every organ, 2 spurious blobs (balls of
  0.5-0.8 times the organ's equivalent-sphere radius, i.e. 12-50 % of its volume, at least 4 mm, written over
  unlabelled body voxels) at least 80 mm above or below the organ, plus for anchors one more blob. This only proves the mechanism (a rule removes what it should, and never the true
  organ): real network errors are different.
* ``models``: the label map predicted by the per-organ bundles that exist (operators.organ_segmentation) on the
  phantom CT, gated by the GrayNet range as in the app (``--no-range``: every slice); organs without a bundle are
  left out of the table.

Variants: ``none``; ``rules`` (anchors cleaned by connected components, as their extents need, then the rules;
no cleanup of the other organs); ``components`` (connected-component cleanup only); ``both`` (the operator).
Prints a table (Dice mean over the cases where the organ is in the ground truth) and writes JSON to
``--out`` (default build/eval_anchor_postprocess_<mode>.json). An organ "helps" when both-on raises its mean
Dice by > 0.002 and lowers no case by more than 0.01.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.phantoms import PhantomParams, generate_phantom  # noqa: E402
from operators.anchor_postprocess.rules import ANCHORS, postprocess  # noqa: E402
from operators.common.labels import ALL_ORGANS, ORGAN_BY_NAME  # noqa: E402
from operators.common.paths import REPO_ROOT  # noqa: E402
from operators.organ_segmentation.results import dice  # noqa: E402

REGIONS = ("whole", "abdomen", "chest", "pelvis")
VARIANTS = ("none", "rules", "components", "both")


def case_params(i: int, seed: int) -> PhantomParams:
    rng = np.random.default_rng([seed, i])
    return PhantomParams(seed=seed + i, sex="MF"[i % 2], age_years=float(rng.uniform(25, 80)),
                         bmi=float(rng.uniform(19, 34)), region=REGIONS[i % len(REGIONS)], matrix=128,
                         slice_thickness_mm=5.0, contrast=("none", "portal")[(i // 2) % 2])


def corrupt(labels: np.ndarray, hu: np.ndarray, affine: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ground truth + spurious blobs far (>= 80 mm in z) from each organ, over unlabelled body voxels."""
    out = labels.copy()
    sp = np.linalg.norm(affine[:3, :3], axis=0)[::-1]  # (z, y, x) mm
    z_mm = affine[2, 2] * np.arange(labels.shape[0]) + affine[2, 3]
    body = (hu > -500) & (labels == 0)
    cand = np.argwhere(body)
    if not len(cand):
        return out
    for lab in ALL_ORGANS:
        m = labels == lab.id
        if not m.any() or lab.name == "bones":
            continue
        zs = z_mm[np.nonzero(m.any(axis=(1, 2)))[0]]
        far = (z_mm[cand[:, 0]] < zs.min() - 80) | (z_mm[cand[:, 0]] > zs.max() + 80)
        pool = cand[far]
        if not len(pool):
            continue
        r_eq = (3.0 * m.sum() * float(np.prod(sp)) / (4.0 * np.pi)) ** (1.0 / 3.0)
        for _ in range(3 if lab.name in ANCHORS else 2):
            c = pool[rng.integers(len(pool))]
            r = max(rng.uniform(0.5, 0.8) * r_eq, 4.0)
            lo = np.maximum(c - np.ceil(r / sp).astype(int), 0)
            hi = np.minimum(c + np.ceil(r / sp).astype(int) + 1, labels.shape)
            kk, jj, ii = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
            ball = ((kk - c[0]) * sp[0]) ** 2 + ((jj - c[1]) * sp[1]) ** 2 + ((ii - c[2]) * sp[2]) ** 2 <= r * r
            sub = out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
            sub[ball & body[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]] = lab.id
    return out


def predict_with_models(ph, models_dir: Path, use_range: bool = True):
    """(label map, organs predicted): the per-organ bundles on the phantom CT, gated by the GrayNet range as in
    the app (``use_range``)."""
    from operators.graynet_range.inference import GrayNetModel
    from operators.graynet_range.operator import run_graynet_range
    from operators.organ_segmentation.inference import find_bundles_dir, load_organ_models, segment_organs

    if not hasattr(predict_with_models, "models"):
        predict_with_models.models = load_organ_models(find_bundles_dir(models_dir))
        predict_with_models.graynet = GrayNetModel.from_bundle(models_dir / "graynet")
    sr = run_graynet_range(ph.ct, predict_with_models.graynet, "eval")[0] if use_range else None
    models = predict_with_models.models
    return segment_organs(ph.ct, models, sr, threads=1).labels, set(models)


def evaluate(mode: str, n: int, seed: int, models_dir: Path, use_range: bool = True, anchors=ANCHORS) -> dict:
    rng = np.random.default_rng(seed)
    per: dict[str, dict[str, list[float]]] = {}
    for i in range(n):
        t0 = time.perf_counter()
        p = case_params(i, seed)
        ph = generate_phantom(p)
        truth = ph.organs
        if mode == "corrupted":
            pred, predicted = corrupt(truth, ph.ct.hu, ph.ct.affine_lps, rng), {lab.name for lab in ALL_ORGANS}
        else:
            pred, predicted = predict_with_models(ph, models_dir, use_range)
        aff = ph.ct.affine_lps
        outs = {"none": pred,
                "rules": postprocess(pred, aff, components={o: o in ANCHORS for o in ORGAN_BY_NAME},
                                     anchors=anchors)[0],
                "components": postprocess(pred, aff, rules={})[0],
                "both": postprocess(pred, aff, anchors=anchors)[0]}
        for lab in ALL_ORGANS:
            gt = truth == lab.id
            if not gt.any() or lab.name not in predicted:
                continue
            d = per.setdefault(lab.name, {v: [] for v in VARIANTS})
            for v in VARIANTS:
                d[v].append(dice(outs[v] == lab.id, gt))
        print(f"case {i} {p.region:8s} {p.sex} {time.perf_counter() - t0:.1f} s", flush=True)
    summary = {}
    for name, d in per.items():
        means = {v: round(float(np.mean(d[v])), 4) for v in VARIANTS}
        worst = float(np.min(np.asarray(d["both"]) - np.asarray(d["none"])))
        summary[name] = {**means, "n": len(d["none"]), "worst_case_change_both": round(worst, 4),
                         "helps": bool(means["both"] - means["none"] > 0.002 and worst > -0.01)}
    return summary


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=("corrupted", "models"), default="corrupted")
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--seed", type=int, default=5000)
    ap.add_argument("--models", default=str(REPO_ROOT / "models"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--no-range", action="store_true", help="models mode: every slice, no GrayNet gating")
    ap.add_argument("--anchors", default=",".join(ANCHORS), help="anchors trusted to bound the others")
    a = ap.parse_args(argv)
    anchors = tuple(x for x in a.anchors.split(",") if x)
    summary = evaluate(a.mode, a.n, a.seed, Path(a.models), not a.no_range, anchors)
    print(f"\n{'organ':20s} {'n':>2s} " + " ".join(f"{v:>10s}" for v in VARIANTS) + "  worst  helps")
    for name in [n for n in ORGAN_BY_NAME if n in summary]:
        s = summary[name]
        print(f"{name:20s} {s['n']:2d} " + " ".join(f"{s[v]:10.4f}" for v in VARIANTS)
              + f" {s['worst_case_change_both']:+.3f}  {'yes' if s['helps'] else 'no'}")
    out = Path(a.out or REPO_ROOT / "build" / f"eval_anchor_postprocess_{a.mode}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"mode": a.mode, "n": a.n, "seed": a.seed, "range": not a.no_range, "anchors": anchors,
                               "organs": summary}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
