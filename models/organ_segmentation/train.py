"""Train the light 2D Res-UNets of the organs and write one MONAI bundle per organ.

    python -m models.organ_segmentation.data --split all                       # cases -> build/organ_seg/cases
    python -m models.organ_segmentation.train --family soft --minutes 70 --seed 0   # 24 soft-window organs
    python -m models.organ_segmentation.train --family lung --minutes 25 --seed 0
    python -m models.organ_segmentation.train --family bone --minutes 35 --seed 0
    python -m models.organ_segmentation.train --finetune kidneys,spleen --minutes 2 --seed 0  # optional

**Stage 1, one network per window family** (``--family``): the organs that share an HU window (soft tissue:
24 organs; lung: lungs; bone: bones and femoral heads) are trained together as one network with one output
per organ (``network.build_network(n)``), on every kept slice of every training case: each sample is a slice
holding a randomly chosen organ of the family (80 %) or any slice (20 %, mostly no organ or other organs), so
that the rare small organs (adrenals, pituitary, lenses) are seen as often as the liver and every model learns
what its organ is *not* on the slices around it. A label that a case generator does not paint (aorta, IVC and
duodenum on ICRP-110; optic nerves, pituitary and trachea on the procedural phantom) is left out of the loss
for that generator's cases rather than taught as background. Each organ's bundle is then the family network
with only that organ's row of the 1 x 1 head (``network.single_output``: the same logits), so a user still
loads one light model per organ. One forward and backward pass trains every organ of the family, which on
this 2-core CPU buys each organ 20-50 times the iterations that separate training could (session 1 gave each
organ 1-4 minutes).

**Stage 2, per-organ fine-tuning** (``--finetune``, optional): an organ's bundle trained further alone on the
slices that hold it plus up to 6 without it within 30 mm (``data.organ_slices``: the operator runs a model
only over the organ's z range and a margin).

Single thread, seeded (torch, numpy). Batch 8; loss BCE + soft Dice (per organ over the batch); AdamW,
one-cycle learning rate (peak 3e-3). Augmentation on the fly: in-plane shift (+-12 px), window-level gain
(0.9-1.1) and offset (+-0.04), extra noise. The number of iterations is fixed before training from
``--minutes`` and the speed of the first iterations (``--iters`` fixes it for an exact re-run); it is recorded
in the bundle. The bundle (``bundles/<organ>/``) gets ``models/model.ts`` (fp16 weights),
``configs/metadata.json`` and ``configs/inference.json``; the held-out figures are added by
``benchmarks/eval_organ_segmentation.py``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.organ_segmentation import data as D
from models.organ_segmentation.network import (
    CHANNELS,
    HEAD_FEATURES,
    IN_CHANNELS,
    NUM_RES_UNITS,
    THRESHOLD,
    build_network,
    export_torchscript,
    n_parameters,
    single_output,
)
from operators.common.labels import ALL_ORGANS, ORGAN_BY_NAME
from operators.organ_segmentation import preprocess as pp

BUNDLES = Path(__file__).resolve().parent / "bundles"
VERSION = "0.2.0"
CHANGELOG = {
    "0.2.0": "one network per window family trained on 168 synthetic cases (72 ICRP-110, 96 procedural), "
             "split into one bundle per organ; trunk + 1x1 head",
    "0.1.0": "first CPU-trained version on synthetic CT (ICRP-110 AM/AF + procedural phantom), one network per organ",
}
ORGAN_SAMPLE_FRACTION = 0.8  # share of samples drawn as "a slice holding a random organ of the family"


def family_organs(family: str) -> list[str]:
    """The organs (ALL_ORGANS order) whose window family is ``family``."""
    if family not in pp.WINDOWS:
        raise ValueError(f"window family must be one of {sorted(pp.WINDOWS)}, got {family!r}")
    return [o.name for o in ALL_ORGANS if pp.WINDOW_FAMILY.get(o.name, "soft") == family]


def family_slices(organs: list[str], specs: list[D.CaseSpec], cache: Path = D.CACHE) -> dict:
    """Every kept slice of the cached ``specs`` in the family's window: ``x`` uint8 (n, 224, 304), ``bits``
    (n, 224, 304), the smallest unsigned type holding one bit per organ (bit c = ``organs[c]``), ``present`` bool
    (n, C), ``valid`` bool (n, C): whether the slice's generator paints organ c at all (union over its cases),
    ``kinds`` of the slices."""
    w = D.organ_window_index(organs[0])
    ids = [ORGAN_BY_NAME[o].id for o in organs]
    dtype = np.uint8 if len(ids) <= 8 else np.uint16 if len(ids) <= 16 else np.uint32
    paths = [D.build_case(spec, cache) for spec in specs]
    counts = []
    for path in paths:
        with np.load(path) as z:
            counts.append(len(z["z_mm"]))
    n = int(sum(counts))  # fill preallocated arrays: peak memory is the data set plus one case
    x = np.empty((n, *pp.NET_SHAPE), np.uint8)
    bits = np.zeros((n, *pp.NET_SHAPE), dtype)
    present = np.zeros((n, len(ids)), bool)
    kinds = np.repeat([s.kind for s in specs], counts)
    i = 0
    for path, k in zip(paths, counts, strict=True):
        case = D.load_case(path)
        x[i:i + k] = case["img"][w]
        for c, lid in enumerate(ids):
            on = ((case["bits"] >> np.uint32(lid - 1)) & np.uint32(1)).astype(dtype)
            present[i:i + k, c] = on.any(axis=(1, 2))
            bits[i:i + k] |= on << dtype(c)
        del case
        i += k
    painted = {k: present[kinds == k].any(axis=0) for k in np.unique(kinds)}
    valid = np.stack([painted[k] for k in kinds]) if len(kinds) else present
    return {"x": x, "bits": bits, "present": present, "valid": valid, "kinds": kinds}


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    x = x * torch.empty(n, 1, 1, 1).uniform_(0.9, 1.1, generator=g) + torch.empty(n, 1, 1, 1).uniform_(-0.04, 0.04, generator=g)
    x = x + torch.randn(x.shape, generator=g) * torch.empty(n, 1, 1, 1).uniform_(0.0, 0.03, generator=g)
    return x.clamp_(0.0, 1.0)


def soft_dice_loss(logits: torch.Tensor, y: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    p = torch.sigmoid(logits)
    inter = (p * y).sum()
    return 1.0 - (2.0 * inter + eps) / (p.sum() + y.sum() + eps)


def _levels(x8: np.ndarray) -> torch.Tensor:
    """(B, 1, H, W) float32 in [0, 1] of uint8 window levels (B, H, W)."""
    return torch.from_numpy(x8.astype(np.float32) / (pp.N_LEVELS - 1)).unsqueeze(1)


def _shift_augment(x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random in-plane shift (+-12 px) of images and labels, then the intensity augmentation."""
    dy, dx = (int(v) for v in torch.randint(-12, 13, (2,), generator=g))
    x = torch.roll(x, (dy, dx), (2, 3))
    y = torch.roll(y, (dy, dx), (2, 3))
    return augment(x, g), y


def batch(x8: np.ndarray, yb: np.ndarray, idx: np.ndarray, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return _shift_augment(_levels(x8[idx]), torch.from_numpy(yb[idx].astype(np.float32)).unsqueeze(1), g)


def family_batch(data: dict, idx: np.ndarray, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x (B, 1, H, W), y (B, C, H, W), valid (B, C)) of slices ``idx``, shifted and intensity-augmented."""
    n_c = data["present"].shape[1]
    bits = data["bits"][idx][:, None] >> np.arange(n_c, dtype=np.uint32)[None, :, None, None]
    x, y = _shift_augment(_levels(data["x"][idx]), torch.from_numpy((bits & np.uint32(1)).astype(np.float32)), g)
    return x, y, torch.from_numpy(data["valid"][idx].astype(np.float32))


def family_loss(logits: torch.Tensor, y: torch.Tensor, valid: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """BCE over the valid (slice, organ) pairs + soft Dice per organ over the batch, averaged over the organs
    with a valid slice in the batch (an organ absent from the batch: its Dice term punishes any prediction)."""
    v = valid[:, :, None, None]
    bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none").mean(dim=(2, 3))
    bce = (bce * valid).sum() / valid.sum().clamp(min=1.0)
    p = torch.sigmoid(logits) * v
    inter = (p * y).sum(dim=(0, 2, 3))
    dice = 1.0 - (2.0 * inter + eps) / (p.sum(dim=(0, 2, 3)) + (y * v).sum(dim=(0, 2, 3)) + eps)
    has = (valid.sum(dim=0) > 0).float()
    return bce + (dice * has).sum() / has.sum().clamp(min=1.0)


def sample_family(data: dict, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` slice indices: a slice holding a uniformly chosen organ of the family (``ORGAN_SAMPLE_FRACTION``)
    or any slice."""
    # the slices holding each organ, computed once per data set
    holders = data.setdefault("_holders", [np.nonzero(data["present"][:, c])[0]
                                           for c in range(data["present"].shape[1])])
    organs = [c for c, h in enumerate(holders) if len(h)]
    out = rng.integers(0, len(data["x"]), n)
    for i in range(n):
        if rng.random() < ORGAN_SAMPLE_FRACTION:
            h = holders[organs[rng.integers(len(organs))]]
            out[i] = h[rng.integers(len(h))]
    return out


def _fit(net: torch.nn.Module, step, minutes: float, iters: int | None, name: str, log=print,
         checkpoint: Path | None = None, schedule_iters: int | None = None) -> dict:
    """Train ``net`` with ``step(it) -> loss tensor`` for ``iters`` iterations (or as many as ``minutes`` allow
    at the speed of the first 5); AdamW with a one-cycle learning rate over ``schedule_iters`` (default: the
    iterations; more = stop before the schedule ends). Returns the training summary."""
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    t0 = time.time()
    n_iter, sched, losses, it = iters, None, [], 0
    while n_iter is None or it < n_iter:
        if n_iter is None and it == 5:  # fix the schedule from the measured speed
            n_iter = max(int(minutes * 60.0 / ((time.time() - t0) / 5)), 20)
        if sched is None and n_iter is not None:
            total = max(schedule_iters or 0, n_iter) - it + 1
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=total, pct_start=0.15)
        loss = step(it)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(loss.item())
        it += 1
        if it % 100 == 0:
            log(f"{name}: iter {it}/{n_iter} loss {np.mean(losses[-100:]):.4f} ({time.time() - t0:.0f} s)")
            if checkpoint is not None:
                torch.save(net.state_dict(), checkpoint)
    net.eval()
    return {"iterations": it, "schedule_iterations": max(schedule_iters or 0, it),
            "minutes": round((time.time() - t0) / 60.0, 2), "final_loss": round(float(np.mean(losses[-50:])), 4)}


def train_family(organs: list[str], data: dict, minutes: float, seed: int, iters: int | None = None,
                 batch_size: int = 8, log=print, checkpoint: Path | None = None,
                 schedule_iters: int | None = None) -> tuple[torch.nn.Module, dict]:
    """One network with an output per organ of ``organs`` (one window family) on ``family_slices`` data."""
    if not len(data["x"]):
        raise ValueError("no training slices")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    net = build_network(len(organs))

    def step(_it):
        xb, yb, vb = family_batch(data, sample_family(data, rng, batch_size), g)
        return family_loss(net(xb), yb, vb)

    summary = _fit(net, step, minutes, iters, f"{'+'.join(organs) if len(organs) < 4 else f'{len(organs)} organs'}",
                   log, checkpoint, schedule_iters)
    summary.update({"stage": "window family", "family_organs": organs, "batch_size": batch_size, "seed": seed,
                    "train_slices": int(len(data["x"])), "organ_sample_fraction": ORGAN_SAMPLE_FRACTION,
                    "positive_slices": {o: int(data["present"][:, c].sum()) for c, o in enumerate(organs)},
                    "initialisation": "random"})
    return net, summary


def init_weights(net: torch.nn.Module, bundle_dir: Path) -> None:
    """Start from an organ's trained bundle (same network): its fp16 weights cast to fp32."""
    ts = torch.jit.load(str(Path(bundle_dir) / "models" / "model.ts"), map_location="cpu")
    net.load_state_dict({k: v.float() for k, v in ts.state_dict().items()})


def finetune_organ(organ: str, x8: np.ndarray, yb: np.ndarray, minutes: float, seed: int,
                   init_from: Path, iters: int | None = None, batch_size: int = 8, log=print,
                   checkpoint: Path | None = None) -> tuple[torch.nn.Module, dict]:
    """One organ's network trained further alone on its ``data.organ_slices``, from its bundle."""
    if not len(x8):
        raise ValueError(f"no training slices hold {organ}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    net = build_network()
    init_weights(net, init_from)

    def step(_it):
        xb, ybt = batch(x8, yb, rng.integers(0, len(x8), batch_size), g)
        out = net(xb)
        return F.binary_cross_entropy_with_logits(out, ybt) + soft_dice_loss(out, ybt)

    summary = _fit(net, step, minutes, iters, organ, log, checkpoint)
    summary.update({"stage": "per-organ fine-tuning", "batch_size": batch_size, "seed": seed,
                    "train_slices": int(len(x8)), "positive_slices": int(yb.any(axis=(1, 2)).sum())})
    return net, summary


def write_bundle(organ: str, net: torch.nn.Module, stages: list[dict], out_root: Path = BUNDLES) -> Path:
    """Export ``net`` (one output) as ``organ``'s bundle; ``stages``: the training summaries in order."""
    lab = ORGAN_BY_NAME[organ]
    root = out_root / organ
    export_torchscript(net, root / "models" / "model.ts", fp16=True)
    window = list(pp.window_for(organ))
    meta_path = root / "configs" / "metadata.json"
    old = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    meta = {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20220324.json",
        "name": f"organ_seg_{organ}", "version": VERSION,
        "changelog": CHANGELOG,
        "task": f"Axial 2D segmentation of the {lab.display.lower()} on CT slices",
        "description": ("Light 2D residual U-Net (MONAI UNet trunk, 2 residual units, channels 8-128, 1x1 head) on "
                        "axial CT slices cropped to the body and resized to 224 x 304, one organ-family HU window. "
                        "Trained on synthetic CT only. Not for clinical use."),
        "authors": "CorpusCT", "intended_use": "Research only - not for clinical use",
        "references": ["Multi-organ light Res-UNet (../shared/papers/multi-organ-resunet.txt)",
                       "ICRP Publication 110: Adult Reference Computational Phantoms. Ann. ICRP 39(2), 2009"],
        "data_source": "Synthetic CT: ICRP-110 AM/AF (models/phantoms/icrp110.py) and the procedural phantom "
                       "(models/phantoms), models/organ_segmentation/data.py",
        "organ": organ, "label_id": lab.id, "snomed": {"value": lab.code.value, "meaning": lab.code.meaning},
        "input_shape": [-1, IN_CHANNELS, *pp.NET_SHAPE], "output_shape": [-1, 1, *pp.NET_SHAPE],
        "channels": IN_CHANNELS, "hu_window": window, "window_family": pp.WINDOW_FAMILY.get(organ, "soft"),
        "intensity_levels": pp.N_LEVELS, "threshold": THRESHOLD, "weights_dtype": "float16",
        "load_note": "TorchScript with fp16 weights: call module.float() after loading (CPU runs fp32)",
        "network": {"class": "models.organ_segmentation.network.build_network: monai.networks.nets.UNet trunk "
                             "-> PReLU -> Conv2d 1x1 head", "spatial_dims": 2, "channels": list(CHANNELS),
                    "strides": [2, 2, 2, 2], "num_res_units": NUM_RES_UNITS, "norm": "batch",
                    "head_features": HEAD_FEATURES, "parameters": n_parameters(net)},
        "preprocess": "operators.organ_segmentation.preprocess (canonical, body_box, to_network with hu_window)",
        "training": {"stages": stages, "cases": {"icrp110": D.N_TRAIN["icrp"], "procedural": D.N_TRAIN["phantom"]}},
        "eval_metrics": old.get("eval_metrics", {"see": "../docs/README.md (benchmarks/eval_organ_segmentation.py)"}),
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "magnitude", "modality": "CT", "num_channels": IN_CHANNELS,
                                 "spatial_shape": list(pp.NET_SHAPE), "dtype": "float32", "value_range": [0, 1],
                                 "is_patch_data": False, "channel_def": {"0": f"HU window {window[0]:g}..{window[1]:g} scaled to 0..1, 240 levels"}}},
            "outputs": {"pred": {"type": "image", "format": "logits", "num_channels": 1,
                                 "spatial_shape": list(pp.NET_SHAPE), "dtype": "float32", "value_range": [],
                                 "is_patch_data": False, "channel_def": {"0": organ}}}},
    }
    meta_path.parent.mkdir(parents=True, exist_ok=True)
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    inference = {
        "imports": ["$import torch", "$import operators.organ_segmentation.preprocess as pp"],
        "bundle_root": ".", "device": "$torch.device('cpu')",
        "network_def": "$torch.jit.load(@bundle_root + '/models/model.ts', map_location=@device).float().eval()",
        "preprocessing": f"pp.canonical -> pp.body_box -> pp.to_network(hu_c, box, {tuple(window)})",
        "inferer": "slices of the organ's z range (plus margin) in batches, torch.inference_mode, CPU fp32",
        "postprocessing": f"sigmoid -> pp.from_network -> >= {THRESHOLD} -> pp.from_canonical",
    }
    (root / "configs" / "inference.json").write_text(json.dumps(inference, indent=1) + "\n")
    return root


def organ_sets(organs: list[str], specs: list[D.CaseSpec], seed: int = 0,
               all_windows: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{organ: (x uint8 (n, 224, 304), y bool (n, 224, 304))} of ``data.organ_slices`` over the cached cases
    (``all_windows``: x (n, 3, 224, 304))."""
    rng = np.random.default_rng(seed)
    acc: dict[str, list] = {o: [[], []] for o in organs}
    for spec in specs:
        case = D.load_case(D.build_case(spec))
        for o in organs:
            x, y = D.organ_slices(case, o, rng=rng, all_windows=all_windows)
            if len(x):
                acc[o][0].append(x)
                acc[o][1].append(y)
        del case
    empty = (0, 3, *pp.NET_SHAPE) if all_windows else (0, *pp.NET_SHAPE)
    return {o: (np.concatenate(a[0]) if a[0] else np.zeros(empty, np.uint8),
                np.concatenate(a[1]) if a[1] else np.zeros((0, *pp.NET_SHAPE), bool)) for o, a in acc.items()}


def _parse_iters(text: str | None) -> int | dict[str, int] | None:
    """``--iters``: None, ``"N"`` or ``"organ=N,organ=N"`` (each fine-tuned organ's own count)."""
    if not text:
        return None
    if "=" not in text:
        return int(text)
    pairs = [p.split("=", 1) for p in text.split(",") if p.strip()]
    return {k.strip(): int(v) for k, v in pairs}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--family", choices=sorted(pp.WINDOWS), help="train this window family's organs together")
    mode.add_argument("--finetune", help="comma-separated organs to train further alone, from their bundles")
    ap.add_argument("--minutes", type=float, default=2.0,
                    help="training time of the family network, or per fine-tuned organ (sets the iterations)")
    ap.add_argument("--iters", default=None,
                    help="fixed iterations (exact re-run): N, or organ=N,organ=N for --finetune")
    ap.add_argument("--schedule-iters", type=int, default=None,
                    help="length of the one-cycle schedule when it is longer than --iters (a run stopped early)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(BUNDLES))
    args = ap.parse_args(argv)
    iters = _parse_iters(args.iters)
    torch.set_num_threads(1)
    out = Path(args.out)
    specs = D.case_specs("train")
    ckpt_dir = D.CACHE / "ckpt"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    log = lambda s: print(s, flush=True)  # noqa: E731
    t0 = time.time()
    if args.family:
        organs = family_organs(args.family)
        data = family_slices(organs, specs)
        log(f"{args.family} family: {len(organs)} organs, {len(data['x'])} slices from {len(specs)} cases "
            f"in {time.time() - t0:.0f} s")
        if isinstance(iters, dict):
            raise SystemExit("--family takes one iteration count (--iters N)")
        net, summary = train_family(organs, data, args.minutes, args.seed, iters, log=log,
                                    checkpoint=ckpt_dir / f"family_{args.family}.pt",
                                    schedule_iters=args.schedule_iters)
        del data
        for c, organ in enumerate(organs):
            if not summary["positive_slices"][organ]:
                log(f"{organ}: absent from every training case - no bundle")
                continue
            write_bundle(organ, single_output(net, c), [summary], out)
        log(f"{args.family} family: {len(organs)} bundles written ({summary['iterations']} iterations, "
            f"{summary['minutes']} min)")
        return 0
    names = [s.strip() for s in args.finetune.split(",") if s.strip()]
    unknown = [n for n in names if n not in ORGAN_BY_NAME]
    if unknown:
        raise SystemExit(f"unknown organ(s): {', '.join(unknown)}")
    missing = [n for n in names if not (out / n / "models" / "model.ts").is_file()]
    if missing:
        raise SystemExit(f"no bundle to fine-tune for {', '.join(missing)} under {out} (train its --family first)")
    sets = organ_sets(names, specs, args.seed)
    for organ in names:
        x8, yb = sets.pop(organ)
        before = json.loads((out / organ / "configs" / "metadata.json").read_text())["training"]["stages"]
        n = iters.get(organ) if isinstance(iters, dict) else iters
        net, summary = finetune_organ(organ, x8, yb, args.minutes, args.seed, out / organ, n, log=log,
                                      checkpoint=ckpt_dir / f"{organ}.pt")
        write_bundle(organ, net, before + [summary], out)
        log(f"{organ}: fine-tuned ({summary})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
