"""Head organ doses against the tube's start angle: new Monte Carlo runs at other start angles than the cohort's,
for test patients of one 8:2 split, against the head network (regions.HELIX_INPUTS) given the angle and averaged
over it (what the operator reports for a series that does not record the angle).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/organ_dose_start_angle.py --patients 6 --angles 0,90,180,270

The cohort's Monte Carlo starts every helix at angle 0 (mc_segments.segment_doses), so its references hold one
angle per patient; here each test patient is synthesised again from its seed (models/organ_dose/cohort.make_case)
and simulated at each ``--angles`` start angle at its first kVp, fixed mA and full range, with the cohort's
histories. Angle 0 with the cohort's seed must reproduce the stored reference (checked). Prints, per organ:
the Monte Carlo's spread over the angles (SD / mean), the network's predicted spread, the network's error at each
given angle (angles other than 0 were never simulated for training), and the angle-averaged network against the
Monte Carlo mean over the angles. Synthetic patients only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.organ_dose.cohort import COLLIMATION_CM, make_case  # noqa: E402
from models.organ_dose.dataset import load_calibration, load_region  # noqa: E402
from models.organ_dose.train import HERE, fit_region, predict, predict_unknown_angle  # noqa: E402
from operators.radiomics_dose.inference import HELIX_ANGLES  # noqa: E402
from operators.radiomics_dose.mc_segments import scan_dose_per_ctdivol, segment_doses  # noqa: E402
from operators.radiomics_dose.regions import REGIONS  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cohort", default=str(HERE / "data" / "cohort"))
    ap.add_argument("--patients", type=int, default=6, help="test patients simulated (half ICRP-110, half procedural)")
    ap.add_argument("--angles", default="0,90,180,270", help="start angles (degrees); 0 is the cohort's")
    ap.add_argument("--seed", type=int, default=100, help="the split (as benchmarks/eval_organ_dose.py split 0)")
    ap.add_argument("--out", default="build/organ_dose/start_angle.json")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    angles = [float(v) for v in a.angles.split(",")]
    reg = REGIONS["head"]
    cal = load_calibration()
    data = load_region(a.cohort, "head", cal)
    patients = np.unique(data.patient)
    perm = np.random.default_rng(a.seed).permutation(patients)
    test_p = set(perm[:max(1, int(round(0.2 * len(patients))))].tolist())
    tr = np.array([i for i, p in enumerate(data.patient) if p not in test_p])
    fitted = fit_region(data, tr, seed=a.seed, n_models=3, model_error=0.05)
    # one sample per test patient: first kVp, fixed mA, full range (the first variant); ICRP-110 and procedural alike
    rows = {}
    for i, (p, case, s) in enumerate(zip(data.patient, data.case, data.tcm_strength, strict=True)):
        if p in test_p and s == 0.0 and case not in rows:
            rows[case] = i
    by_kind = {"ICRP": [], "proc": []}
    for case, i in sorted(rows.items()):
        info = json.loads(str(np.load(Path(a.cohort) / case)["info"]))
        by_kind["ICRP" if info["patient"]["kind"] == "icrp" else "proc"].append((case, i, info))
    chosen = by_kind["ICRP"][:a.patients // 2] + by_kind["proc"][:a.patients - a.patients // 2]
    result = {"angles_deg": angles, "organs": list(reg.organs), "patients": []}
    for case, i, info in chosen:
        t0 = time.perf_counter()
        kvp = float(data.kvp[i])
        stored = np.load(Path(a.cohort) / case)
        # histories per full segment (a shorter last segment runs its share of them)
        n_per_segment = int(round(info["histories"] / (len(stored["kvps"]) * stored["seg_length_frac"].sum())))
        hu, aff, lab, _ = make_case(info["patient"], "head")
        ctdiw = cal[f"{int(kvp)}_{reg.bowtie}"]["ctdiw_per_photon_mgy"]
        mc, sig = [], []
        for k, ang in enumerate(angles):
            seed = info["patient"]["seed"] % 100000 + int(kvp) + 1000 * k  # k = 0: the cohort's seed
            seg = segment_doses(hu, aff, lab, reg.organs, kvp, bowtie=reg.bowtie, collimation_cm=COLLIMATION_CM,
                                n_per_segment=n_per_segment, seed=seed, start_angle_deg=ang)
            y, s = scan_dose_per_ctdivol(seg, ctdiw)
            mc.append(y)
            sig.append(s)
        mc, sig = np.array(mc), np.array(sig)
        if angles[0] == 0.0 and not np.allclose(mc[0], data.y[i], rtol=1e-6, equal_nan=True):
            raise SystemExit(f"{case}: angle 0 does not reproduce the cohort's reference ({mc[0]} vs {data.y[i]})")
        base = np.arctan2(data.helix_sin[i], data.helix_cos[i])
        net = []
        for ang in angles:
            shifted = np.radians(ang)
            d1 = replace(data, helix_cos=data.helix_cos.copy(), helix_sin=data.helix_sin.copy())
            d1.helix_cos[i], d1.helix_sin[i] = np.cos(base + shifted), np.sin(base + shifted)
            net.append(predict(fitted, d1, np.array([i]))[0])
        net = np.array(net)
        avg = predict_unknown_angle(fitted, data, np.array([i]), HELIX_ANGLES)[0]
        result["patients"].append({"case": case, "kind": info["patient"]["kind"], "kvp": kvp,
                                   "mc": mc.tolist(), "mc_sigma": sig.tolist(), "network": net.tolist(),
                                   "network_unknown_angle": avg.tolist(), "seconds": round(time.perf_counter() - t0, 1)})
        print(f"{case} ({info['patient']['kind']}, {kvp:g} kVp, {time.perf_counter() - t0:.0f} s)", flush=True)
    P = result["patients"]
    mc = np.array([p["mc"] for p in P])  # (patients, angles, organs)
    net = np.array([p["network"] for p in P])
    avg = np.array([p["network_unknown_angle"] for p in P])
    sig = np.array([p["mc_sigma"] for p in P])
    summary = {}
    for j, o in enumerate(reg.organs):
        m, n = mc[:, :, j], net[:, :, j]
        ok = np.isfinite(m).all(axis=1)
        if not ok.any():
            continue
        m, n, s = m[ok], n[ok], sig[ok][:, :, j]
        summary[o] = {
            "mc_spread_over_angles_percent": round(100 * float(np.mean(m.std(axis=1) / m.mean(axis=1))), 2),
            "mc_noise_percent": round(100 * float(np.mean(s / m)), 2),
            "network_spread_over_angles_percent": round(100 * float(np.mean(n.std(axis=1) / n.mean(axis=1))), 2),
            "network_mape_angle_given_percent": {f"{ang:g}": round(100 * float(np.mean(np.abs(n[:, k] - m[:, k]) / m[:, k])), 2)
                                                 for k, ang in enumerate(angles)},
            "network_unknown_angle_vs_mc_mean_mape_percent": round(
                100 * float(np.mean(np.abs(avg[ok][:, j] - m.mean(axis=1)) / m.mean(axis=1))), 2),
            "network_unknown_angle_vs_mc_single_angle_mape_percent": round(
                100 * float(np.mean(np.abs(avg[ok][:, j, None] - m) / m)), 2),
            "n_patients": int(ok.sum())}
    result["summary"] = summary
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
