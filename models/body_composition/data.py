"""Training / test data for the body-composition network, resampled to the model grid (operators/
body_composition/preprocess.py: 4 mm pixels, 5 mm slices, canonical orientation) and cached as .npz. Two sources:

* ``procedural`` (default): procedural phantoms (models/phantoms) whose ``body_composition`` labels are the
  ground truth;
* ``icrp``: CT synthesised from the ICRP-110 phantoms AM / AF (models/phantoms/icrp110.py ``random_params`` +
  ``synthesize_ct``: build and height scaling, deformation, contrast, noise, blur, table) with the labels of
  models/body_composition/icrp_labels.py resampled through the same coordinates as the HU.

    python -m models.body_composition.data --out build/bodycomp_data --n 60 --seed 0          # training
    python -m models.body_composition.data --out build/bodycomp_test --n 8 --seed 1000        # held-out
    python -m models.body_composition.data --source icrp --out build/bodycomp_data --n 20 --seed 0   # ICRP

ICRP cases are named ``case_icrp_<seed>_<i>.npz`` so they can share a folder with the procedural ones
(``case_<seed>_<i>.npz``) and a training run on that folder mixes both. ICRP case i is AM for even i, AF for
odd i. The ICRP random stream is ``default_rng([110, seed, i])`` (disjoint from the procedural
``seed * 1000 + i``); training uses seed 0, the held-out ICRP evaluation seed 1000. Only two people underlie
all ICRP cases: held-out ICRP cases differ from training ones by variation and scan, not anatomy.

Procedural cases draw (seeded) sex, age 20-85, BMI 17-40, region (abdomen 35 %, whole 25 %, chest 15 %, pelvis 15 %,
head 10 %), matrix 128-256 (native pixel ~2-5.6 mm), slice thickness 2.5 / 3 / 5 mm, contrast, kernel, arms.
Held-out sets use different seeds (different anatomy variation, noise and parameters).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from models.body_composition.icrp_labels import body_composition_labels
from models.npz_io import save_npz_atomic
from models.phantoms import PhantomParams, generate_phantom, icrp110
from operators.body_composition.preprocess import ModelGrid

REGIONS = ("abdomen", "whole", "chest", "pelvis", "head")
REGION_P = (0.35, 0.25, 0.15, 0.15, 0.10)


def case_params(i: int, seed: int) -> PhantomParams:
    rng = np.random.default_rng(seed * 1000 + i)
    region = str(rng.choice(REGIONS, p=REGION_P))
    matrix = int(rng.choice([128, 160, 192, 256])) if region != "whole" else int(rng.choice([128, 160]))
    return PhantomParams(seed=seed * 1000 + i, sex=str(rng.choice(["F", "M"])), age_years=float(rng.uniform(20, 85)),
                         bmi=float(rng.uniform(17, 40)), region=region, matrix=matrix,
                         slice_thickness_mm=float(rng.choice([2.5, 3.0, 5.0])) if region != "whole" else 5.0,
                         contrast=str(rng.choice(["none", "portal", "arterial"], p=[0.5, 0.35, 0.15])),
                         kernel=str(rng.choice(["soft", "standard", "sharp"])),
                         arms=str(rng.choice(["auto", "up", "down"])), variation=float(rng.uniform(0.7, 1.3)))


def model_grid_case(ct, labels: np.ndarray, params: dict) -> dict:
    """A cached case: HU (float16) and BODY_COMPOSITION labels of ``ct`` on the model grid, ``params`` as JSON."""
    grid = ModelGrid.of(ct.shape, ct.affine_lps)
    return {"x": grid.to_model(ct.hu).astype(np.float16), "y": grid.labels_to_model(labels),
            "params": json.dumps(params)}


def make_case(p: PhantomParams) -> dict:
    ph = generate_phantom(p)
    return model_grid_case(ph.ct, ph.body_composition, ph.params.resolved().to_json())


# --- ICRP-110 source ----------------------------------------------------------------------------------

ICRP_STREAM = 110
ICRP_REGIONS = ("abdomen", "trunk", "chest", "pelvis", "whole")
ICRP_REGION_P = (0.35, 0.25, 0.15, 0.15, 0.10)


@dataclasses.dataclass
class IcrpCase:
    """Parameters of one ICRP-110 case: phantom, region and the synthesis parameters (z range in scaled mm)."""

    phantom: str
    region: str
    synthesis: icrp110.SynthesisParams

    def to_json(self) -> dict:
        return {"source": "icrp110", "phantom": self.phantom, "region": self.region,
                "synthesis": dataclasses.asdict(self.synthesis)}


def _icrp_z_range(region: str, lm: dict[str, float], rng: np.random.Generator) -> tuple[float, float] | None:
    """(bottom, top) z (mm, scaled phantom) of a scan of ``region``, with random margins like real scan ranges;
    None for the whole body."""
    u = rng.uniform
    if region == "abdomen":  # dome to iliac crest / pelvis
        return lm["iliac_crest"] - u(0.0, 1.0) * (lm["iliac_crest"] - lm["ischial_tuberosity"] + 20.0), \
            lm["diaphragm_dome"] + u(20.0, 60.0)
    if region == "trunk":  # chest-abdomen-pelvis
        return lm["ischial_tuberosity"] - u(10.0, 60.0), lm["lung_apex"] + u(10.0, 40.0)
    if region == "chest":
        return lm["lung_base"] - u(20.0, 70.0), lm["lung_apex"] + u(10.0, 40.0)
    if region == "pelvis":
        return lm["ischial_tuberosity"] - u(20.0, 80.0), lm["iliac_crest"] + u(20.0, 60.0)
    if region == "whole":
        return None
    raise ValueError(f"unknown ICRP case region {region!r}; expected one of {ICRP_REGIONS}")


def icrp_case_params(i: int, seed: int, regions: tuple[str, ...] | None = None) -> IcrpCase:
    """Case i of ICRP seed ``seed``: AM (even i) / AF (odd i), region drawn with ``ICRP_REGION_P`` (or
    ``regions[(i // 2) % len(regions)]`` when given), ``icrp110.random_params`` variation, 1.6-2.4 mm pixels
    on a 256 matrix; whole-body scans at 5 mm slices."""
    rng = np.random.default_rng([ICRP_STREAM, seed, i])
    phantom = icrp110.PHANTOMS[i % 2]
    region = str(rng.choice(ICRP_REGIONS, p=ICRP_REGION_P)) if regions is None else regions[(i // 2) % len(regions)]
    sp = icrp110.random_params(rng, matrix=256, pixel_mm=float(rng.uniform(1.6, 2.4)))
    if region == "whole":
        sp.slice_thickness_mm = 5.0
    lm = {k: v * sp.scale_z for k, v in icrp110.landmarks_mm(phantom).items()}
    sp.z_range_mm = _icrp_z_range(region, lm, rng)
    if sp.z_range_mm is not None:
        sp.z_range_mm = tuple(round(float(v), 1) for v in sp.z_range_mm)
    return IcrpCase(phantom, region, sp)


def synthesize_icrp_case(c: IcrpCase) -> icrp110.SyntheticCT:
    """The synthetic CT of ``c``; its ``organs`` field holds the BODY_COMPOSITION labels on the scan grid."""
    return icrp110.synthesize_ct(c.phantom, c.synthesis, native_labels=body_composition_labels(c.phantom))


def make_icrp_case(c: IcrpCase) -> dict:
    s = synthesize_icrp_case(c)
    return model_grid_case(s.ct, s.organs, c.to_json())


def _build_one(job: tuple[Path, int, int, str]) -> str:
    path, i, seed, source = job
    t = time.time()
    c = make_icrp_case(icrp_case_params(i, seed)) if source == "icrp" else make_case(case_params(i, seed))
    save_npz_atomic(path, **c)
    return f"{path.name}: {c['x'].shape} {json.loads(c['params'])['region']} {time.time() - t:.1f}s"


def build(out: Path, n: int, seed: int, source: str = "procedural", workers: int = 1) -> list[Path]:
    """Cases 0..n-1 of ``seed`` in ``out`` (existing ones are kept); ``workers`` processes build them in
    parallel (each case depends only on its own seed, so the result does not depend on ``workers``)."""
    if source not in ("procedural", "icrp"):
        raise ValueError(f"source must be 'procedural' or 'icrp', got {source!r}")
    out.mkdir(parents=True, exist_ok=True)
    prefix = "case_icrp" if source == "icrp" else "case"
    paths = [out / f"{prefix}_{seed:04d}_{i:03d}.npz" for i in range(n)]
    jobs = [(p, i, seed, source) for i, p in enumerate(paths) if not p.exists()]
    if workers > 1 and len(jobs) > 1:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(min(workers, len(jobs))) as pool:
            for line in pool.imap_unordered(_build_one, jobs):
                print(line, flush=True)
    else:
        for job in jobs:
            print(_build_one(job), flush=True)
    return paths


def load(paths) -> list[dict]:
    out = []
    for p in paths:
        d = np.load(p)
        out.append({"x": d["x"].astype(np.float32), "y": d["y"], "params": json.loads(str(d["params"]))})
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--source", choices=("procedural", "icrp"), default="procedural")
    ap.add_argument("--workers", type=int, default=1, help="parallel processes (one case each)")
    a = ap.parse_args()
    build(a.out, a.n, a.seed, a.source, a.workers)
