"""Train the per-region organ-dose networks on the Monte Carlo cohort and write the MONAI bundle.

    OMP_NUM_THREADS=1 .venv/bin/python -m models.organ_dose.train --cohort build/organ_dose/cohort

Per region (head, chest, abdomen): f-regression (F statistic of each radiomics feature against each organ's
log dose per CTDIvol, on the training patients only) keeps the top 100 features (ranked by their best F over
the region's organs), plus the protocol and geometry inputs (1 / kVp, Dw of the scan, and per organ the Dw of its
slices, its margin to the nearer scan end, its TCM factor and, head only, its position relative to the isocentre); the FCN (network.py) is
trained with a masked MSE (organs absent from a phantom do not count), Adam, seeded. Output: models/organ_dose/models/model_<region>.ts (TorchScript with
the scalers inside), models/scalers.json (selected features, scalers) and configs/metadata.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from models.organ_dose.dataset import RegionData, load_calibration, load_region
from models.organ_dose.network import DROPOUT, HIDDEN, DoseFCN, DoseModel
from operators.radiomics_dose.inference import clip_to_range
from operators.radiomics_dose.regions import (  # organ_inputs: RegionData fields
    HELIX_INPUTS,
    PROTOCOL_INPUTS,
    REGIONS,
)

log = logging.getLogger("organ_dose.train")
HERE = Path(__file__).resolve().parent
N_SELECT = 100


def f_regression(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """F statistic of a univariate linear regression of ``y`` on each column of ``X`` (scikit-learn's
    f_regression): F = r^2 / (1 - r^2) (n - 2), over the rows where both are finite; 0 for constant columns."""
    ok = np.isfinite(X) & np.isfinite(y)[:, None]
    n = ok.sum(axis=0).astype(float)
    w = ok.astype(float)
    Xz = np.where(ok, X, 0.0)
    Y = np.where(ok, np.where(np.isfinite(y), y, 0.0)[:, None], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx, my = Xz.sum(0) / n, Y.sum(0) / n
        cx, cy = (Xz - mx) * w, (Y - my) * w
        sxx, syy, sxy = (cx**2).sum(0), (cy**2).sum(0), (cx * cy).sum(0)
        const = (sxx <= 1e-24 * np.maximum(mx**2, 1.0) * n) | (syy <= 0) | (n < 3)
        r2 = np.clip(sxy**2 / (sxx * syy), 0.0, 1.0 - 1e-12)
        F = r2 / (1.0 - r2) * (n - 2)
    return np.where(const | ~np.isfinite(F), 0.0, F)


def targets(data: RegionData) -> np.ndarray:
    """log(dose / (CTDIvol x TCM factor)) per organ (NaN where absent)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.log(data.y / np.where(np.isfinite(data.tcm_factor), data.tcm_factor, 1.0))


def select_features(data: RegionData, idx: np.ndarray, n: int = N_SELECT) -> np.ndarray:
    T = targets(data)[idx]
    scores = np.stack([f_regression(data.X_feat[idx], T[:, o]) for o in range(T.shape[1])]).max(axis=0)
    return np.argsort(-scores, kind="stable")[:n]


def inputs(data: RegionData, sel: np.ndarray) -> np.ndarray:
    """[selected features, 1 / kVp, Dw, then the region's per-organ inputs (REGIONS[..].organ_inputs: Dw of the
    organ's slices, margin to the scan end, TCM factor; head: also AP offset and mean distance from the
    isocentre)], in ``protocol_input_names`` order after the features."""
    return np.column_stack([data.X_feat[:, sel], 1.0 / data.kvp, data.dw_cm]
                           + [getattr(data, k) for k in REGIONS[data.region].organ_inputs]).astype(np.float32)


def protocol_input_names(region: str, organs) -> list[str]:
    return list(PROTOCOL_INPUTS) + [f"{k}:{o}" for k in REGIONS[region].organ_inputs for o in organs]


@dataclass
class Fitted:
    model: DoseModel
    selected: list
    seconds: float
    final_loss: float
    x_min: np.ndarray  # each input's range over the training samples: inputs are held to it at prediction
    x_max: np.ndarray


def fit_region(data: RegionData, idx: np.ndarray, seed: int = 0, epochs: int = 300, lr: float = 3e-3,
               weight_decay: float = 1e-3, batch: int = 48, n_select: int = N_SELECT, n_models: int = 1,
               model_error: float | None = None) -> Fitted:
    """Feature selection and training on the samples ``idx`` only. ``model_error``: None, every target counts
    alike; else each target's squared error is weighted by 1 / (model_error^2 + (MC sigma / dose)^2), normalised
    per organ (a noisy Monte Carlo reference counts less; relative errors, i.e. in log dose)."""
    t0 = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny network: one core (the machine is shared), restored on return
    try:
        return _fit(data, idx, seed, epochs, lr, weight_decay, batch, n_select, n_models, model_error, t0)
    finally:
        torch.set_num_threads(threads)


def _fit(data, idx, seed, epochs, lr, weight_decay, batch, n_select, n_models, model_error, t0) -> Fitted:
    sel = select_features(data, idx, n_select)
    X = inputs(data, sel)[idx]
    T = targets(data)[idx]
    x_mean = np.nanmean(X, axis=0)
    x_std = np.nanstd(X, axis=0)
    x_std = np.where(x_std > 1e-12 * np.maximum(np.abs(x_mean), 1.0), x_std, 1.0)
    y_mean = np.nanmean(T, axis=0)
    y_std = np.nanstd(T, axis=0)
    y_mean = np.where(np.isfinite(y_mean), y_mean, 0.0)
    y_std = np.where(np.isfinite(y_std) & (y_std > 1e-6), y_std, 1.0)
    fcns = []
    for k in range(n_models):
        torch.manual_seed(seed * 1000 + k)
        fcns.append(DoseFCN(X.shape[1], T.shape[1]))
    model = DoseModel(fcns, x_mean, x_std, y_mean, y_std)
    Z = model.scale(torch.as_tensor(X))
    Tz = torch.as_tensor(((T - y_mean) / y_std).astype(np.float32))
    mask = torch.isfinite(Tz)
    Tz = torch.where(mask, Tz, torch.zeros_like(Tz))
    if model_error is not None:  # inverse-variance weights of the targets, mean 1 per organ
        with np.errstate(invalid="ignore", divide="ignore"):
            w = 1.0 / (model_error**2 + (data.sigma[idx] / data.y[idx]) ** 2)
        w = np.where(mask.numpy(), w, np.nan)
        w = np.nan_to_num(w / np.nanmean(w, axis=0), nan=0.0)
        mask = mask * torch.as_tensor(w.astype(np.float32))
    n = len(idx)
    loss_v = float("nan")
    for k, fcn in enumerate(model.fcns):
        rng = np.random.default_rng(seed * 1000 + k)
        opt = torch.optim.AdamW(fcn.parameters(), lr=lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
        fcn.train()
        for _ in range(epochs):
            perm = rng.permutation(n)
            for s in range(0, n, batch):
                b = perm[s:s + batch]
                if len(b) < 2:
                    continue
                pred = fcn(Z[b])
                m = mask[b]
                loss = ((pred - Tz[b]) ** 2 * m).sum() / m.sum().clamp(min=1)
                opt.zero_grad()
                loss.backward()
                opt.step()
                loss_v = float(loss.detach())
            sched.step()
    model.eval()
    with np.errstate(all="ignore"):  # an input NaN in every sample (an organ no phantom has) has no range
        x_min, x_max = np.nanmin(X, axis=0), np.nanmax(X, axis=0)
    return Fitted(model, [data.feature_names[i] for i in sel], time.perf_counter() - t0, loss_v, x_min, x_max)


def predict(fitted: Fitted, data: RegionData, idx: np.ndarray) -> np.ndarray:
    """Dose / CTDIvol per organ for the samples ``idx``."""
    names = list(data.feature_names)
    sel = np.array([names.index(f) for f in fitted.selected])
    X = torch.as_tensor(clip_to_range(inputs(data, sel)[idx], fitted.x_min, fitted.x_max).astype(np.float32))
    with torch.no_grad():
        return fitted.model(X, torch.as_tensor(data.tcm_factor[idx].astype(np.float32))).numpy()


def predict_unknown_angle(fitted: Fitted, data: RegionData, idx: np.ndarray, n_angles: int) -> np.ndarray:
    """``predict`` averaged over ``n_angles`` evenly spaced shifts of the helix angle (regions.HELIX_INPUTS), as the
    operator predicts for a series that does not record the tube's start angle; ``predict`` itself for a region
    whose network does not read the angle."""
    if not set(HELIX_INPUTS) & set(REGIONS[data.region].organ_inputs):
        return predict(fitted, data, idx)
    angle = np.arctan2(data.helix_sin, data.helix_cos)
    return np.mean([predict(fitted, replace(data, helix_cos=np.cos(angle + a), helix_sin=np.sin(angle + a)), idx)
                    for a in 2.0 * np.pi * np.arange(n_angles) / n_angles], axis=0)


def export(fitted: Fitted, region: str, data: RegionData, out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    ts = torch.jit.script(fitted.model)
    path = out_dir / f"model_{region}.ts"
    ts.save(str(path))
    m = fitted.model
    return {"model": f"models/{path.name}", "organs": list(data.organs),
            "inputs": list(fitted.selected) + protocol_input_names(data.region, data.organs),
            "x_train_min": fitted.x_min.tolist(), "x_train_max": fitted.x_max.tolist(),
            "x_mean": m.x_mean.tolist(), "x_std": m.x_std.tolist(), "y_mean": m.y_mean.tolist(),
            "y_std": m.y_std.tolist(), "n_train_samples": int(len(data.y)),
            "n_train_patients": int(len(set(data.patient.tolist())))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cohort", default=str(HERE / "data" / "cohort"))
    ap.add_argument("--out", default=str(HERE))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--n-select", type=int, default=N_SELECT, help="f-regression top features (paper: 100)")
    ap.add_argument("--n-models", type=int, default=1, help="ensemble members (seeds)")
    ap.add_argument("--model-error", type=float, default=None,
                    help="weight targets by 1 / (this^2 + MC rel. sigma^2) (fit_region)")
    ap.add_argument("--eval-summary", default="build/organ_dose/eval/summary.json",
                    help="benchmarks/eval_organ_dose.py output: its median test RRMSE per organ becomes the "
                         "relative uncertainty the operator reports")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(1)
    cal = load_calibration()
    out = Path(a.out)
    scalers = {}
    for region in ("head", "chest", "abdomen"):
        data = load_region(a.cohort, region, cal)
        fitted = fit_region(data, np.arange(len(data.y)), seed=a.seed, epochs=a.epochs, n_select=a.n_select,
                            model_error=a.model_error,
                            n_models=a.n_models)
        scalers[region] = export(fitted, region, data, out / "models")
        scalers[region]["train_seconds"] = round(fitted.seconds, 1)
        log.info("%s: %d samples of %d patients, trained in %.1f s (final loss %.3f)", region, len(data.y),
                 scalers[region]["n_train_patients"], fitted.seconds, fitted.final_loss)
    (out / "models" / "scalers.json").write_text(json.dumps(scalers, indent=1))
    meta_path = out / "configs" / "metadata.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    meta.setdefault("corpusct", {})["regions"] = {
        r: {"model": s["model"], "organs": s["organs"], "n_inputs": len(s["inputs"]),
            "n_train_patients": s["n_train_patients"], "n_train_samples": s["n_train_samples"]}
        for r, s in scalers.items()}
    meta["corpusct"]["ctdiw_head16_over_body32"] = {
        str(int(cal[k]["kvp"])): round(cal[k]["ctdiw_per_photon_mgy"] / cal[k.replace("head", "body")]["ctdiw_per_photon_mgy"], 4)
        for k in cal if k.endswith("_head")}
    ev = Path(a.eval_summary)
    if ev.exists():
        summ = json.loads(ev.read_text())
        meta["corpusct"]["relative_uncertainty"] = {
            r: {o: round(v["metrics"]["network"][o]["rrmse"][1] / 100.0, 4) for o in v["organs"]
                if np.isfinite(v["metrics"]["network"][o]["rrmse"][1])} for r, v in summ.items()}
        meta["corpusct"]["relative_uncertainty_source"] = "median test RRMSE over the evaluation splits"
    meta["corpusct"]["network"] = {"hidden": list(HIDDEN), "dropout": DROPOUT, "epochs": a.epochs, "seed": a.seed,
                                   "n_select": a.n_select, "linear_shortcut": True, "n_models": a.n_models,
                                   "target_weights": ("unweighted" if a.model_error is None else
                                                      f"1 / ({a.model_error}^2 + MC rel. sigma^2), mean 1 per organ")}
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    meta_path.write_text(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
