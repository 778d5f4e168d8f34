"""Train the body-composition 3D U-Net on cached synthetic cases (data.py) and export the bundle TorchScript.

    python -m models.body_composition.data --out build/bodycomp_data --n 60 --seed 0
    python -m models.body_composition.train --data build/bodycomp_data --minutes 14 \
        --out models/body_composition/models/model.ts

CPU, single thread by default (``--threads``), seeded; a TorchScript checkpoint every 250 steps. Patches 8 slices x 128 x 128 (5 mm x 4 mm x 4 mm), batch 2, Adam (lr 2e-3, cosine),
loss = cross-entropy + soft Dice (8 classes). Augmentation: in-plane shift via the crop, HU offset +-15,
extra noise 0-10 HU, slight HU scale (0.97-1.03).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.body_composition import data as bdata
from models.body_composition.network import N_CLASSES, BodyCompNet
from operators.body_composition.preprocess import AIR_HU
from operators.common.progress import Progress

PATCH = (8, 128, 128)


def sample_patch(case: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    x, y = case["x"], case["y"]
    z, h, w = x.shape
    pz, ph, pw = PATCH
    if z < pz:
        x = np.pad(x, ((0, pz - z), (0, 0), (0, 0)), mode="edge")
        y = np.pad(y, ((0, pz - z), (0, 0), (0, 0)), mode="edge")
        z = pz
    k = int(rng.integers(0, z - pz + 1))
    xs, ys = x[k:k + pz], y[k:k + pz]
    body = np.nonzero(ys.any(axis=0))
    cy, cx = (int(np.mean(body[0])), int(np.mean(body[1]))) if len(body[0]) else (h // 2, w // 2)
    cy += int(rng.integers(-12, 13))
    cx += int(rng.integers(-12, 13))
    out_x = np.full(PATCH, AIR_HU, np.float32)
    out_y = np.zeros(PATCH, np.uint8)
    y0, x0 = cy - ph // 2, cx - pw // 2
    sy0, sx0 = max(y0, 0), max(x0, 0)
    sy1, sx1 = min(y0 + ph, h), min(x0 + pw, w)
    out_x[:, sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = xs[:, sy0:sy1, sx0:sx1]
    out_y[:, sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = ys[:, sy0:sy1, sx0:sx1]
    return out_x, out_y


def batch(cases, rng, n: int):
    xs, ys = zip(*(sample_patch(cases[int(rng.integers(len(cases)))], rng) for _ in range(n)), strict=True)
    x = torch.from_numpy(np.stack(xs))[:, None]
    body = x > -500
    x = x * float(rng.uniform(0.97, 1.03)) + float(rng.uniform(-15, 15)) * body
    x = x + torch.randn(x.shape) * float(rng.uniform(0, 10)) * body
    return x, torch.from_numpy(np.stack(ys).astype(np.int64))


CE_WEIGHTS = torch.tensor([0.5, 2.0, 2.0, 1.0, 1.5, 1.0, 1.0, 2.0])  # thin / small classes count more


def loss_fn(logits, y, ce_weights=CE_WEIGHTS):
    ce = F.cross_entropy(logits, y, weight=ce_weights)
    p = logits.softmax(1)
    oh = F.one_hot(y, N_CLASSES).permute(0, 4, 1, 2, 3).float()
    dims = (0, 2, 3, 4)
    inter = (p * oh).sum(dims)
    den = p.sum(dims) + oh.sum(dims)
    present = oh.sum(dims) > 0
    dice = 1 - (2 * inter + 1e-3) / (den + 1e-3)
    return ce + dice[present].mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=14.0)
    ap.add_argument("--steps", type=int, default=0, help="exact step count (reproduces a logged run); 0: time budget")
    ap.add_argument("--init", type=Path, default=None, help="continue from a TorchScript model.ts")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("models/body_composition/models/model.ts"))
    ap.add_argument("--ce-weights", type=str, default="",
                    help="8 comma-separated cross-entropy class weights (default CE_WEIGHTS)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: the shared CPU rule)")
    ap.add_argument("--checkpoint-every", type=int, default=250, help="steps between TorchScript checkpoints")
    ap.add_argument("--device", default="cpu", help="torch device (cpu, cuda); the exported model is on the CPU")
    a = ap.parse_args()
    dev = torch.device(a.device)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    cases = bdata.load(sorted(a.data.glob("case_*.npz")))
    net = BodyCompNet()
    if a.init:  # a bundle's TorchScript, or a state_dict (.pt) where this torch cannot read that TorchScript
        net.load_state_dict(torch.load(str(a.init), map_location="cpu") if a.init.suffix == ".pt"
                            else torch.jit.load(str(a.init), map_location="cpu").state_dict())
    net.to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    ce_w = torch.tensor([float(v) for v in a.ce_weights.split(",")]) if a.ce_weights else CE_WEIGHTS
    if ce_w.numel() != N_CLASSES:
        raise SystemExit(f"--ce-weights needs {N_CLASSES} values")
    ce_w = ce_w.to(dev)
    budget = a.minutes * 60.0
    t0 = time.time()
    log, step, run = [], 0, None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    prog = Progress(a.steps or None, "body-composition training", unit="steps",
                    budget_s=None if a.steps else budget, every_s=60)
    while (step < a.steps) if a.steps else (time.time() - t0 < budget):
        frac = step / a.steps if a.steps else (time.time() - t0) / budget
        for g in opt.param_groups:
            g["lr"] = a.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        x, y = batch(cases, rng, a.batch)
        loss = loss_fn(net(x.to(dev)), y.to(dev), ce_w)
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        prog.update()
        run = float(loss.detach()) if run is None else 0.95 * run + 0.05 * float(loss.detach())
        if step % 25 == 0:
            log.append({"step": step, "s": round(time.time() - t0, 1), "loss": round(run, 4)})
            print(log[-1], flush=True)
        if a.checkpoint_every and step % a.checkpoint_every == 0:  # usable model if the run is stopped early
            torch.jit.script(copy.deepcopy(net).cpu().eval()).save(str(a.out.with_suffix(".ckpt.ts")))
    net.cpu().eval()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), a.out.with_suffix(".pt.tmp"))  # kept until the TorchScript export succeeded
    ts = torch.jit.script(net)
    ts.save(str(a.out))
    info = {"steps": step, "seconds": round(time.time() - t0, 1), "batch": a.batch, "patch": PATCH, "lr": a.lr,
            "seed": a.seed, "n_cases": len(cases), "init": str(a.init) if a.init else None, "threads": a.threads,
            "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
            "ce_weights": [round(float(v), 3) for v in ce_w],
            "log": log}
    (a.out.parent.parent / "docs").mkdir(exist_ok=True)
    (a.out.parent.parent / "docs" / "training_log.json").write_text(json.dumps(info, indent=1) + "\n")
    a.out.with_suffix(".pt.tmp").unlink()
    print("saved", a.out, step, "steps")


if __name__ == "__main__":
    main()
