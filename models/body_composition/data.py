"""Training / test data for the body-composition network: procedural phantoms (models/phantoms) whose
``body_composition`` labels are the ground truth, resampled to the model grid (operators/body_composition/
preprocess.py: 4 mm pixels, 5 mm slices, canonical orientation) and cached as .npz.

    python -m models.body_composition.data --out build/bodycomp_data --n 60 --seed 0          # training
    python -m models.body_composition.data --out build/bodycomp_test --n 8 --seed 1000        # held-out

Each case draws (seeded) sex, age 20-85, BMI 17-40, region (abdomen 35 %, whole 25 %, chest 15 %, pelvis 15 %,
head 10 %), matrix 128-256 (native pixel ~2-5.6 mm), slice thickness 2.5 / 3 / 5 mm, contrast, kernel, arms.
Held-out sets use different seeds (different anatomy variation, noise and parameters).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from models.phantoms import PhantomParams, generate_phantom
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


def make_case(p: PhantomParams) -> dict:
    ph = generate_phantom(p)
    grid = ModelGrid.of(ph.ct.shape, ph.ct.affine_lps)
    return {"x": grid.to_model(ph.ct.hu).astype(np.float16), "y": grid.labels_to_model(ph.body_composition),
            "params": json.dumps(ph.params.resolved().to_json())}


def build(out: Path, n: int, seed: int) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = out / f"case_{seed:04d}_{i:03d}.npz"
        if not path.exists():
            t = time.time()
            c = make_case(case_params(i, seed))
            np.savez_compressed(path, **c)
            print(f"{path.name}: {c['x'].shape} {json.loads(c['params'])['region']} {time.time() - t:.1f}s", flush=True)
        paths.append(path)
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
    a = ap.parse_args()
    build(a.out, a.n, a.seed)
