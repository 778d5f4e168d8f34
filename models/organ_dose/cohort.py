"""Training cohort of the organ-dose networks: synthetic patients x scan protocols with Monte Carlo reference
organ doses and radiomics features. Reproducible from the seed; one case = one patient scanned over one
region (head, chest or abdomen).

    for i in 0 1; do OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv/bin/python -m models.organ_dose.cohort \\
        --out build/organ_dose/cohort --patients 90 --seed 7 --head-histories 2.5e6 --shard $i/2 & done

(the bundle's cohort and how long it takes: models/organ_dose/docs/README.md, "Reproduce").

Patients alternate ICRP-110 AM / AF variants (models.phantoms.icrp110.random_params + synthesize_ct: build,
height, deformation, contrast, noise, HU texture) and procedural phantoms (models.phantoms.generate_phantom:
sex, age 8-85 y, BMI 17-38). Head scans (bundle 0.3.0): the ICRP variants' in-plane scale is a head's
(0.92-1.08, not the trunk's build 0.85-1.35), and the field of view is centred on the patient as a technologist
centres a head, with a drawn mis-centring (``centre_field_of_view``; before, ICRP heads lay 6-9 cm off the
isocentre, which the Monte Carlo takes as the image centre). Per case: the CT over a jittered region range
(5 mm slices), its ALL_ORGANS label map, the organs' per-slice positions relative to the isocentre
(regions.organ_slice_positions), the Monte Carlo per-segment organ doses (operators/radiomics_dose/mc_segments.py) at two of
80/100/120/140 kVp, and radiomics features (operators/radiomics_dose/features.py) of the region's organs and
the body for the scanned range (``--range-variants 2``: also for the range shortened by one segment). Protocol variants (kVp, TCM strength,
CTDIvol) cost nothing more: models/organ_dose/dataset.py combines segments into scans.

Each case is written as soon as it is done (``case_XXX_<region>.npz``), so a cohort cut short is still
usable; rerunning skips finished cases. Progress and time remaining go to the log. ``--refresh-mc`` recomputes
only the Monte Carlo doses of finished cases scored by an earlier rule (``ORGAN_SCORING``; bundles 0.4.0, 0.5.0).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

from models.npz_io import save_npz_atomic
from operators.common.dosimetry import water_equivalent_diameter_mm
from operators.common.morphology import patient_outline
from operators.mc_dose.dose import SOFT_KERMA_ORGANS
from operators.radiomics_dose import features as F
from operators.radiomics_dose.mc_segments import segment_doses
from operators.radiomics_dose.regions import REGIONS, organ_slice_mass, organ_slice_positions

log = logging.getLogger("organ_dose.cohort")
KVPS = (80.0, 100.0, 120.0, 140.0)
COLLIMATION_CM = 4.0
# how mc_segments scores organs. "voxel" (bundle 0.4.0): energy deposited in the organ's own voxels over their
# mass, by the analog estimator (at real interactions); before it, the mass-weighted mean of the blocks' doses.
# "voxel-expected-kerma" (bundle 0.5.0): the same tally with the engine's expected-value kerma estimator (every
# tentative collision scores; same expectation, pituitary / lens noise 2-5 x lower variance). --refresh-mc
# recomputes the cases scored by an earlier rule. "voxel-expected-kerma, pituitary tissue kerma" (bundle 0.8.0):
# the pituitary gland is scored as its tissue's kerma in all its voxels (mc_dose.dose.SOFT_KERMA_ORGANS), not in
# the few of them its partial volume with the sella leaves soft.
ORGAN_SCORING = "voxel-expected-kerma, pituitary tissue kerma"
# earlier rules that give a case the same doses as ORGAN_SCORING unless it holds one of these organs: --refresh-mc
# re-tags such cases without running their Monte Carlo again
SAME_RULE_WITHOUT = {"voxel-expected-kerma": tuple(SOFT_KERMA_ORGANS)}
HERE = Path(__file__).resolve().parent


def patient_plan(seed: int, n: int) -> list[dict]:
    """The patients of the cohort (deterministic from ``seed``)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        kind = "icrp" if i % 2 == 0 else "proc"
        p = {"index": i, "kind": kind, "seed": int(rng.integers(1 << 30)),
             "kvps": [float(k) for k in rng.choice(KVPS, 2, replace=False)]}
        if kind == "icrp":
            p["phantom"] = "AM" if (i // 2) % 2 == 0 else "AF"
        else:
            p["sex"] = "M" if rng.random() < 0.5 else "F"
            p["age_years"] = float(np.round(rng.choice([rng.uniform(8, 18), rng.uniform(18, 85)], p=[0.2, 0.8]), 1))
            p["bmi"] = float(np.round(rng.uniform(17, 24) if p["age_years"] < 18 else rng.uniform(18, 38), 1))
        out.append(p)
    return out


# Head scans: the technologist centres the head on the rotation axis; the residual mis-centring (table height,
# head holder) is drawn per case, 1 sigma 10 mm anterior-posterior and 5 mm left-right, held to +-25 / +-10 mm
HEAD_MISCENTRING_SD_MM = (10.0, 5.0)
HEAD_MISCENTRING_MAX_MM = (25.0, 10.0)


def centre_field_of_view(hu: np.ndarray, affine: np.ndarray, labels: np.ndarray, offset_ap_lr_mm=(0.0, 0.0)):
    """(hu, affine, labels) translated in-plane by whole voxels so that the image centre (the isocentre of the Monte
    Carlo and of the organ-position inputs: operators/radiomics_dose/regions.organ_slice_positions) lies at the
    patient's centroid plus ``offset_ap_lr_mm`` (LPS y, x). The grid grows where the patient would leave it;
    outside the old grid is air (-1000 HU, label 0). Spacing and slices are unchanged."""
    body = patient_outline(hu)
    if not body.any():
        raise ValueError("no patient in the case's CT")
    ny, nx = hu.shape[1:]
    jj, ii = np.nonzero(body.any(axis=0))
    w = body.sum(axis=0)[jj, ii].astype(float)
    cj, ci = float(np.average(jj, weights=w)), float(np.average(ii, weights=w))
    # in-plane index step per LPS mm (axial images: the 2 x 2 block of (x, y) per (column, row))
    block = np.array([[affine[0, 0], affine[0, 1]], [affine[1, 0], affine[1, 1]]], float)
    di, dj = np.linalg.solve(block, [float(offset_ap_lr_mm[1]), float(offset_ap_lr_mm[0])])

    def place(n: int, centre: float, lo: int, hi: int) -> tuple[int, int]:
        """(size, old index of the new first voxel): centre (n - 1) / 2 at ``centre`` to half a voxel, body rows
        lo..hi inside with a voxel to spare (the size grows by 2, keeping the centre, until they are)."""
        while True:
            start = int(round(centre - (n - 1) / 2.0))
            if start < lo and start + n - 1 > hi:
                return n, start
            n += 2

    nyn, j0 = place(ny, cj + dj, int(jj.min()), int(jj.max()))
    nxn, i0 = place(nx, ci + di, int(ii.min()), int(ii.max()))
    hu_n = np.full((hu.shape[0], nyn, nxn), -1000.0, hu.dtype)
    lab_n = np.zeros((hu.shape[0], nyn, nxn), labels.dtype)
    src_j, src_i = slice(max(j0, 0), min(j0 + nyn, ny)), slice(max(i0, 0), min(i0 + nxn, nx))
    dst_j = slice(src_j.start - j0, src_j.stop - j0)
    dst_i = slice(src_i.start - i0, src_i.stop - i0)
    hu_n[:, dst_j, dst_i] = hu[:, src_j, src_i]
    lab_n[:, dst_j, dst_i] = labels[:, src_j, src_i]
    aff = np.array(affine, float)
    aff[:3, 3] = aff[:3, 3] + aff[:3, 1] * j0 + aff[:3, 0] * i0
    return hu_n, aff, lab_n


def make_case(p: dict, region: str):
    """(hu, affine, label_map, info) of patient ``p`` scanned over ``region``."""
    hu, aff, lab, info = _synthesise(p, region)
    if region == "head":
        rng = np.random.default_rng([p["seed"], list(REGIONS).index(region), 1])
        off = np.clip(rng.normal(0.0, HEAD_MISCENTRING_SD_MM), -np.array(HEAD_MISCENTRING_MAX_MM),
                      HEAD_MISCENTRING_MAX_MM)
        hu, aff, lab = centre_field_of_view(hu, aff, lab, off)
        info["isocentre_minus_centroid_ap_lr_mm"] = [round(float(v), 2) for v in off]
    return hu, aff, lab, info


def _synthesise(p: dict, region: str):
    """(hu, affine, label_map, info) of patient ``p`` over ``region`` as the phantom generators place it."""
    rng = np.random.default_rng([p["seed"], list(REGIONS).index(region)])
    if p["kind"] == "icrp":
        from models.phantoms import icrp110 as I

        sp = I.random_params(np.random.default_rng(p["seed"]), slice_thickness_mm=5.0)
        lm = {k: v * sp.scale_z for k, v in I.landmarks_mm(p["phantom"]).items()}
        if region == "head":
            z = (lm["mandible_bottom"] - 15 + rng.uniform(-10, 40), lm["vertex"] + rng.uniform(0, 15))
        elif region == "chest":
            z = (lm["lung_base"] - rng.uniform(10, 50), lm["lung_apex"] + rng.uniform(10, 40))
        else:
            z = (lm["iliac_crest"] - rng.uniform(5, 40), lm["diaphragm_dome"] + rng.uniform(10, 40))
        sp.z_range_mm = (float(z[0]), float(z[1]))
        if region == "head":  # random_params' build (0.85-1.35) is a trunk's: an adult head varies ~4 % (1 SD)
            g = rng.uniform(0.92, 1.08)
            sp.scale_lr, sp.scale_ap = g * rng.uniform(0.97, 1.03), g * rng.uniform(0.97, 1.03)
        s = I.synthesize_ct(p["phantom"], sp)
        info = {"source": f"ICRP-110 {p['phantom']}", "sex": s.sex, "weight_kg": s.weight_kg,
                "height_cm": s.height_cm, "age_years": None, "scale_lr": sp.scale_lr, "scale_ap": sp.scale_ap,
                "scale_z": sp.scale_z, "contrast": sp.contrast}
        return s.ct.hu, s.ct.affine_lps, s.organs, info
    from models.phantoms import PhantomParams, generate_phantom

    ph = generate_phantom(PhantomParams(seed=p["seed"], sex=p["sex"], age_years=p["age_years"], bmi=p["bmi"],
                                        region=region, slice_thickness_mm=5.0,
                                        contrast=str(rng.choice(["none", "portal"]))))
    info = {"source": "procedural", "sex": p["sex"], "age_years": p["age_years"], "bmi": p["bmi"],
            "weight_kg": ph.params.weight_kg if hasattr(ph.params, "weight_kg") else None,
            "height_cm": ph.params.height_cm if hasattr(ph.params, "height_cm") else None}
    return ph.ct.hu, ph.ct.affine_lps, ph.organs, info


def _features_matrix(feats: dict, rois) -> tuple[np.ndarray, list[str]]:
    names = F.feature_names()
    mat = np.array([[feats[r].values.get(k, np.nan) for k in names] for r in rois], float)
    return mat, [feats[r].status for r in rois]


def _monte_carlo(p: dict, region: str, hu, aff, lab, n_head: int, n_trunk: int, backend: str) -> dict:
    """{kVp: SegmentDoses} of patient ``p`` over ``region``: the reference organ doses, seeded by the patient."""
    reg = REGIONS[region]
    return {kvp: segment_doses(hu, aff, lab, reg.organs, kvp, bowtie=reg.bowtie, collimation_cm=COLLIMATION_CM,
                               n_per_segment=n_head if region == "head" else n_trunk,
                               seed=p["seed"] % 100000 + int(kvp), backend=backend) for kvp in p["kvps"]}


def _mc_info(seg: dict) -> dict:
    return {"histories": int(sum(s.histories for s in seg.values())),
            "mc_seconds": round(sum(s.seconds for s in seg.values()), 2), "organ_scoring": ORGAN_SCORING,
            "mc_info": {str(k): {kk: (list(vv) if isinstance(vv, tuple) else vv) for kk, vv in s.info.items()}
                        for k, s in seg.items()}}


def run_case(p: dict, region: str, out: Path, n_head: int, n_trunk: int, range_variants: int = 1,
             backend: str = "cpu") -> dict:
    reg = REGIONS[region]
    t0 = time.perf_counter()
    hu, aff, lab, info = make_case(p, region)
    t_synth = time.perf_counter() - t0
    spacing = (abs(aff[2, 2]), abs(aff[1, 1]), abs(aff[0, 0]))
    slice_z = aff[2, 3] + aff[2, 2] * np.arange(hu.shape[0])
    dw = water_equivalent_diameter_mm(hu, spacing, body_mask=patient_outline(hu))
    seg = _monte_carlo(p, region, hu, aff, lab, n_head, n_trunk, backend)
    t_mc = time.perf_counter() - t0 - t_synth
    s0 = seg[p["kvps"][0]]
    n_seg = len(s0.z0_mm)
    # range variants: the full range, and (4+ segments) the range shortened by one segment at a random end
    variants = [(0, n_seg)]
    if n_seg >= 4 and range_variants > 1:
        variants.append((1, n_seg) if np.random.default_rng(p["seed"] + 11).random() < 0.5 else (0, n_seg - 1))
    rois = list(reg.organs) + [F.BODY]
    cache: dict = {}
    fmats, fstat, vslices = [], [], []
    for a, b in variants:
        zlo, zhi = s0.z0_mm[a] - 1e-3, s0.z1_mm[b - 1] + 1e-3
        keep = np.nonzero((slice_z >= zlo) & (slice_z <= zhi))[0]
        vslices.append((int(keep[0]), int(keep[-1]) + 1))
        sl = slice(keep[0], keep[-1] + 1)
        feats = F.region_features(hu[sl], spacing, lab[sl], reg.organs, include_body=True, cache=cache)
        m, st = _features_matrix(feats, rois)
        fmats.append(m)
        fstat.append(st)
    t_feat = time.perf_counter() - t0 - t_synth - t_mc
    kv = list(p["kvps"])
    save_npz_atomic(
        out, region=region, organs=np.array(reg.organs), rois=np.array(rois), kvps=np.array(kv),
        seg_z0_mm=s0.z0_mm, seg_z1_mm=s0.z1_mm, seg_length_frac=s0.length_frac,
        seg_dose=np.stack([seg[k].dose for k in kv]), seg_sigma=np.stack([seg[k].sigma for k in kv]),
        slice_z_mm=slice_z, dw_mm=dw, organ_slice_voxels=organ_slice_mass(lab, reg.organs),
        organ_slice_position_mm=organ_slice_positions(lab, reg.organs, aff),
        variants=np.array(variants), variant_slices=np.array(vslices), features=np.stack(fmats),
        feature_status=np.array(fstat), feature_names=np.array(F.feature_names()),
        info=json.dumps({**info, "patient": p, **_mc_info(seg), "synth_seconds": round(t_synth, 2),
                         "feature_seconds": round(t_feat, 2), "shape": list(hu.shape), "spacing_mm": list(spacing)}))
    return {"mc_s": t_mc, "feat_s": t_feat, "synth_s": t_synth, "histories": sum(s.histories for s in seg.values()),
            "mc_only_s": sum(s.seconds for s in seg.values()), "n_seg": n_seg,
            "rel_sigma": {o: float(np.nanmax(np.sqrt((s0.sigma[:, j] ** 2).sum()) / max(s0.dose[:, j].sum(), 1e-300)))
                          for j, o in enumerate(reg.organs) if np.isfinite(s0.dose[:, j]).all()}}


def refresh_monte_carlo(cohort_dir: Path, n_head: int, n_trunk: int, shard: int = 0, n_shards: int = 1,
                        backend: str = "cpu") -> int:
    """Recompute the Monte Carlo organ doses of the cases of a cohort scored by an earlier rule (info
    ``organ_scoring`` other than ORGAN_SCORING), keeping their CT-derived data (features, Dw, positions). Each
    patient is synthesised again from its seed: its per-slice organ voxel counts must equal the stored ones, and
    the histories those stored, else the case is left alone and reported. With the same seeds the result equals a
    run from scratch. A case scored by a rule of SAME_RULE_WITHOUT that holds none of its organs only gets the
    current rule's name. Shards: the j-th case to re-tag and the j-th case to re-run go to shard j % n_shards;
    returns the number of cases whose Monte Carlo this shard re-ran."""
    n = 0
    rerun, retag = [], []
    for path in sorted(Path(cohort_dir).glob("case_*.npz")):
        with np.load(path, allow_pickle=False) as d:
            rule = json.loads(str(d["info"])).get("organ_scoring")
            held = {str(o) for o, v in zip(d["organs"], d["organ_slice_voxels"].sum(axis=0), strict=True) if v > 0}
        if rule != ORGAN_SCORING:
            same = rule in SAME_RULE_WITHOUT and not held & set(SAME_RULE_WITHOUT[rule])
            (retag if same else rerun).append(path)
    for path in retag[shard::n_shards]:
        with np.load(path, allow_pickle=False) as d:
            data = {k: d[k] for k in d.files}
        data["info"] = json.dumps({**json.loads(str(data["info"])), "organ_scoring": ORGAN_SCORING})
        save_npz_atomic(path, **data)
        log.info("%s: holds none of the organs the rule changed, so its doses are the current rule's: re-tagged",
                 path.name)
    for path in rerun[shard::n_shards]:
        with np.load(path, allow_pickle=False) as d:
            data = {k: d[k] for k in d.files}
        info = json.loads(str(data["info"]))
        organs = [str(o) for o in data["organs"]]
        region, t = str(data["region"]), time.perf_counter()
        hu, aff, lab, _ = make_case(info["patient"], region)
        if not np.array_equal(organ_slice_mass(lab, organs), data["organ_slice_voxels"]):
            log.error("%s: the re-synthesised labels differ from the stored organ voxel counts; left alone", path.name)
            continue
        seg = _monte_carlo(info["patient"], region, hu, aff, lab, n_head, n_trunk, backend)
        mc = _mc_info(seg)
        if mc["histories"] != info["histories"]:
            log.error("%s: %d histories, the stored case had %d (other --head/--trunk-histories?); left alone",
                      path.name, mc["histories"], info["histories"])
            continue
        kv = [float(k) for k in data["kvps"]]
        old = data["seg_dose"].sum(axis=1)
        data["seg_dose"] = np.stack([seg[k].dose for k in kv])
        data["seg_sigma"] = np.stack([seg[k].sigma for k in kv])
        data["info"] = json.dumps({**info, **mc})
        save_npz_atomic(path, **data)
        n += 1
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = data["seg_dose"].sum(axis=1) / old
        log.info("%s: Monte Carlo re-scored in %.0f s; new/old scan dose per organ at %s kVp: %s", path.name,
                 time.perf_counter() - t, kv[-1], dict(zip(organs, np.round(ratio[-1], 3).tolist(), strict=True)))
    return n


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="build/organ_dose/cohort")
    ap.add_argument("--patients", type=int, default=30)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--regions", default="head,chest,abdomen")
    ap.add_argument("--head-histories", type=float, default=5.0e5, help="per 4 cm segment and kVp")
    ap.add_argument("--trunk-histories", type=float, default=2.0e5, help="per 4 cm segment and kVp")
    ap.add_argument("--range-variants", type=int, default=1, help="2: also a range shortened by one segment")
    ap.add_argument("--backend", default="cpu", choices=("cpu", "cuda"), help="Monte Carlo engine backend")
    ap.add_argument("--budget-min", type=float, default=None, help="stop starting new patients after this")
    ap.add_argument("--shard", default="0/1", help="i/n: this process runs the cases j with j %% n == i (run n "
                                                   "processes with i = 0..n-1 on one --out for n cores)")
    ap.add_argument("--refresh-mc", action="store_true",
                    help="only recompute the Monte Carlo organ doses of the finished cases of --out that were scored "
                         "by an earlier rule (same seeds and histories; cohorts before bundle 0.5.0)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    logging.getLogger("operators.mc_dose.engine").setLevel(logging.WARNING)  # per-batch progress of each run
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    shard, n_shards = (int(x) for x in a.shard.split("/"))
    if a.refresh_mc:
        n = refresh_monte_carlo(out, int(a.head_histories), int(a.trunk_histories), shard, n_shards, a.backend)
        log.info("Monte Carlo recomputed for %d cases in %.1f min", n, (time.perf_counter() - t0) / 60)
        return
    plan = patient_plan(a.seed, a.patients)
    (out / f"plan_shard{shard}.json").write_text(json.dumps({"seed": a.seed, "patients": plan, "args": vars(a)},
                                                            indent=1))
    regions = a.regions.split(",")
    jobs = [(p, r) for p in plan for r in regions]
    jobs = [jr for j, jr in enumerate(jobs) if j % n_shards == shard]
    done_s, n_done = 0.0, 0
    log.info("cohort: %d patients x %d regions = %d cases (threads: OMP %s, NUMBA %s)", len(plan), len(regions),
             len(jobs), os.environ.get("OMP_NUM_THREADS"), os.environ.get("NUMBA_NUM_THREADS"))
    for j, (p, r) in enumerate(jobs):
        path = out / f"case_{p['index']:03d}_{r}.npz"
        if path.exists():
            continue
        if a.budget_min and (time.perf_counter() - t0) / 60 > a.budget_min:
            log.info("time budget of %.0f min reached: stopping before case %d", a.budget_min, j)
            break
        t = time.perf_counter()
        s = run_case(p, r, path, int(a.head_histories), int(a.trunk_histories), a.range_variants, a.backend)
        dt = time.perf_counter() - t
        done_s += dt
        n_done += 1
        eta = done_s / n_done * (len(jobs) - j - 1)
        log.info("case %d/%d %s %s: %.0f s (synth %.1f, MC %.1f s = %.0f hist/s, features %.1f), %d segments, "
                 "max organ rel. sigma %s; elapsed %.1f min, ETA %.1f min", j + 1, len(jobs), p["kind"], r, dt,
                 s["synth_s"], s["mc_only_s"], s["histories"] / max(s["mc_only_s"], 1e-9), s["feat_s"], s["n_seg"],
                 {k: round(100 * v, 1) for k, v in s["rel_sigma"].items()}, (time.perf_counter() - t0) / 60, eta / 60)
    log.info("cohort done: %d cases in %.1f min", n_done, (time.perf_counter() - t0) / 60)


if __name__ == "__main__":
    main()
