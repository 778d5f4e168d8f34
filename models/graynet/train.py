"""Train GrayNet on the cached synthetic slices (models/graynet/data.py) and export the bundle's TorchScript.

    python -m models.graynet.data --out build/graynet_data --procedural 110 --icrp 50 --seed 0
    python -m models.graynet.train --data build/graynet_data --minutes 12 --out models/graynet/models/model.ts

CPU, 2 threads, seeded (torch, numpy). Losses: BCE for the 24 body parts and sex, L1 for age (ICRP-110
samples have no age and are masked), weight and the AM reference z. Augmentations on the fly: in-plane
shift (+-4 px), field-of-view truncation (circle), HU offset (+-15), extra noise.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.graynet import data as gdata
from models.graynet.network import AGE_SCALE, WEIGHT_SCALE, Z_SCALE, GrayNet
from operators.common.progress import Progress

LOSS_W = {"parts": 1.0, "sex": 0.3, "age": 0.3, "weight": 0.3, "ref_z": 3.0}


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n, _, h, w = x.shape
    dy, dx = (int(v) for v in torch.randint(-4, 5, (2,), generator=g))
    x = torch.roll(x, (dy, dx), (2, 3))
    x += torch.empty(n, 1, 1, 1).uniform_(-15, 15, generator=g)
    x += torch.randn(x.shape, generator=g) * torch.empty(n, 1, 1, 1).uniform_(0, 8, generator=g)
    trunc = torch.rand(n, generator=g) < 0.25
    if trunc.any():
        yy, xx = torch.meshgrid(torch.arange(h) - h / 2, torch.arange(w) - w / 2, indexing="ij")
        r = torch.empty(n).uniform_(28, 48, generator=g).view(n, 1, 1, 1)
        outside = (yy ** 2 + xx ** 2).sqrt().view(1, 1, h, w) > r
        x = torch.where(outside & trunc.view(n, 1, 1, 1), torch.full_like(x, -1000.0), x)
    return x


def losses(out: torch.Tensor, y: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    age_ok = torch.isfinite(y["age"])
    return {
        "parts": F.binary_cross_entropy_with_logits(out[:, :24], y["parts"]),
        "sex": F.binary_cross_entropy_with_logits(out[:, 24], y["sex"]),
        "age": (F.l1_loss(out[age_ok, 25], y["age"][age_ok] / AGE_SCALE) if age_ok.any() else out.sum() * 0),
        "weight": F.l1_loss(out[:, 26], y["weight"] / WEIGHT_SCALE),
        "ref_z": F.l1_loss(out[:, 27], y["ref_z"] / Z_SCALE),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="build/graynet_data")
    ap.add_argument("--out", default="models/graynet/models/model.ts")
    ap.add_argument("--log", default="models/graynet/docs/training_log.json")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--minutes", type=float, default=12.0)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--init", default="", help="TorchScript model to start from (fine-tuning)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    paths = sorted(Path(a.data).glob("*_0*.npz"))
    paths = [p for p in paths if not p.name.endswith(".tmp.npz")]
    d = gdata.load(paths)
    n_samples = len(paths)
    val_samples = set(rng.choice(n_samples, max(1, n_samples // 10), replace=False).tolist())
    is_val = np.isin(d["sample"], list(val_samples))
    tr = np.nonzero(~is_val)[0]
    va = np.nonzero(is_val)[0]
    print(f"{n_samples} samples, {len(tr)} train / {len(va)} val slices", flush=True)
    X = torch.from_numpy(d["x"])  # int16 (n, 96, 96)
    Y = {"parts": torch.from_numpy(d["parts"].astype(np.float32)), "sex": torch.from_numpy(d["sex"]),
         "age": torch.from_numpy(d["age"]), "weight": torch.from_numpy(d["weight"]),
         "ref_z": torch.from_numpy(d["ref_z"].astype(np.float32))}
    model = GrayNet()
    if a.init:
        model.load_state_dict(torch.jit.load(a.init).state_dict())
        print(f"initialised from {a.init}", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-4)
    steps_per_epoch = len(tr) // a.batch
    budget = a.minutes * 60.0

    def set_lr():  # warm-up then cosine over the time budget (the CPU is shared: epochs take varying time)
        frac = min((time.time() - t0) / budget, 1.0)
        lr = a.lr * (frac / 0.1 if frac < 0.1 else 0.5 * (1 + np.cos(np.pi * (frac - 0.1) / 0.9)))
        for grp in opt.param_groups:
            grp["lr"] = max(lr, a.lr * 0.01)
    g = torch.Generator().manual_seed(a.seed)
    t0 = time.time()
    history = []
    best_score = None
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)

    def write_log():
        Path(a.log).write_text(json.dumps(
            {"samples": n_samples, "train_slices": int(len(tr)), "val_slices": int(len(va)), "seed": a.seed,
             "threads": a.threads, "init": a.init, "lr": a.lr, "best_val_score": best_score,
             "minutes": round((time.time() - t0) / 60, 2), "history": history}, indent=1) + "\n")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    prog = Progress(a.epochs, "GrayNet training", unit="epochs", budget_s=budget, every_s=0)
    for ep in range(a.epochs):
        model.train()
        perm = torch.from_numpy(rng.permutation(tr))
        tot = {}
        for s in range(steps_per_epoch):
            idx = perm[s * a.batch:(s + 1) * a.batch]
            x = augment(X[idx].float()[:, None], g)
            out = model(x)
            ls = losses(out, {k: v[idx] for k, v in Y.items()})
            loss = sum(LOSS_W[k] * v for k, v in ls.items())
            opt.zero_grad()
            loss.backward()
            set_lr()
            opt.step()
            for k, v in ls.items():
                tot[k] = tot.get(k, 0.0) + float(v.detach())
            if (time.time() - t0) > a.minutes * 60:
                break
        model.eval()
        with torch.no_grad():
            outs = torch.cat([model(X[va[s:s + 512]].float()[:, None]) for s in range(0, len(va), 512)])
        vl = losses(outs, {k: v[va] for k, v in Y.items()})
        acc = float(((outs[:, :24] > 0).float() == Y["parts"][va]).float().mean())
        rec = {"epoch": ep, "minutes": round((time.time() - t0) / 60, 2),
               "train": {k: round(v / max(s + 1, 1), 4) for k, v in tot.items()},
               "val": {k: round(float(v), 4) for k, v in vl.items()}, "val_part_accuracy": round(acc, 4),
               "val_ref_z_mae_mm": round(float(vl["ref_z"]) * Z_SCALE, 1)}
        score = float(vl["parts"]) + float(vl["ref_z"]) * 3.0  # val: body parts + reference z
        rec["val_score"] = round(score, 4)
        history.append(rec)
        print(json.dumps(rec), flush=True)
        if best_score is None or score < best_score:  # keep the best epoch so far (a run may be cut short)
            best_score = score
            model.eval()
            torch.jit.script(model).save(a.out)
            rec["saved"] = True
        write_log()
        prog.update()
        if (time.time() - t0) > a.minutes * 60:
            print("time limit reached", flush=True)
            break
    write_log()
    print(f"saved the best epoch to {a.out} ({Path(a.out).stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
