"""Train one light 2D Res-UNet per organ on the cached synthetic cases and write its MONAI bundle.

    python -m models.organ_segmentation.data --split all                  # cases -> build/organ_seg/cases
    python -m models.organ_segmentation.train --organs liver,lungs --minutes 5 --seed 0
    python -m models.organ_segmentation.train --organs all --minutes 1.5  # every organ of ALL_ORGANS

Per organ: the slices of every training case that hold the organ (at most 40 per case, evenly spread) plus up
to 6 slices without it within 30 mm of its extent (``data.organ_slices``; the operator runs a model only over
the organ's z range and a margin), in the organ family's window. Single thread, seeded (torch, numpy).
Batch 8; loss BCE + soft Dice; AdamW, one-cycle learning rate (peak 3e-3). Augmentation on the fly: in-plane
shift (+-12 px), window-level gain (0.9-1.1) and offset (+-0.04), extra noise. ``--init-from liver`` starts
the organs from the liver bundle's weights (liver and lungs: random initialisation), which converges within
the short per-organ budget where random initialisation does not (1.5 minutes from scratch left pancreas,
bladder and oesophagus at Dice 0; see docs/README.md). The number of iterations is
fixed before training from ``--minutes`` and the speed of the first iterations (``--iters`` fixes it for an
exact re-run); it is recorded in the bundle. The bundle (``bundles/<organ>/``) gets ``models/model.ts``
(fp16 weights), ``configs/metadata.json`` and ``configs/inference.json``; the held-out figures are added by
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
    IN_CHANNELS,
    NUM_RES_UNITS,
    THRESHOLD,
    build_network,
    export_torchscript,
    n_parameters,
)
from operators.common.labels import ALL_ORGANS, ORGAN_BY_NAME
from operators.organ_segmentation import preprocess as pp

BUNDLES = Path(__file__).resolve().parent / "bundles"
VERSION = "0.1.0"
# order of training when all organs are asked for: the paper's headline organs first
PRIORITY = ("liver", "lungs", "kidneys", "spleen")


def organ_sets(organs: list[str], specs: list[D.CaseSpec], seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{organ: (x uint8 (n, 224, 304), y bool (n, 224, 304))} over the cached cases, one pass."""
    rng = np.random.default_rng(seed)
    acc: dict[str, list] = {o: [[], []] for o in organs}
    for spec in specs:
        case = D.load_case(D.build_case(spec))
        for o in organs:
            x, y = D.organ_slices(case, o, rng=rng)
            if len(x):
                acc[o][0].append(x)
                acc[o][1].append(y)
        del case
    return {o: (np.concatenate(a[0]) if a[0] else np.zeros((0, *pp.NET_SHAPE), np.uint8),
                np.concatenate(a[1]) if a[1] else np.zeros((0, *pp.NET_SHAPE), bool)) for o, a in acc.items()}


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    x = x * torch.empty(n, 1, 1, 1).uniform_(0.9, 1.1, generator=g) + torch.empty(n, 1, 1, 1).uniform_(-0.04, 0.04, generator=g)
    x = x + torch.randn(x.shape, generator=g) * torch.empty(n, 1, 1, 1).uniform_(0.0, 0.03, generator=g)
    return x.clamp_(0.0, 1.0)


def soft_dice_loss(logits: torch.Tensor, y: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    p = torch.sigmoid(logits)
    inter = (p * y).sum()
    return 1.0 - (2.0 * inter + eps) / (p.sum() + y.sum() + eps)


def batch(x8: np.ndarray, yb: np.ndarray, idx: np.ndarray, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(x8[idx].astype(np.float32) / (pp.N_LEVELS - 1)).unsqueeze(1)
    y = torch.from_numpy(yb[idx].astype(np.float32)).unsqueeze(1)
    dy, dx = (int(v) for v in torch.randint(-12, 13, (2,), generator=g))
    x = torch.roll(x, (dy, dx), (2, 3))
    y = torch.roll(y, (dy, dx), (2, 3))
    return augment(x, g), y


def init_weights(net: torch.nn.Module, bundle_dir: Path) -> None:
    """Start from another organ's trained bundle (same network): its fp16 weights cast to fp32."""
    ts = torch.jit.load(str(Path(bundle_dir) / "models" / "model.ts"), map_location="cpu")
    net.load_state_dict({k: v.float() for k, v in ts.state_dict().items()})


def train_organ(organ: str, x8: np.ndarray, yb: np.ndarray, minutes: float, seed: int, iters: int | None = None,
                batch_size: int = 8, log=print, checkpoint: Path | None = None,
                init_from: Path | None = None) -> tuple[torch.nn.Module, dict]:
    if not len(x8):
        raise ValueError(f"no training slices hold {organ}")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    net = build_network()
    if init_from is not None:
        init_weights(net, init_from)
    net.train()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    t0 = time.time()
    n_iter = iters
    sched = None
    losses = []
    it = 0
    while n_iter is None or it < n_iter:
        if n_iter is None and it == 5:  # fix the schedule from the measured speed
            n_iter = max(int(minutes * 60.0 / ((time.time() - t0) / 5)), 20)
        if sched is None and n_iter is not None:
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=n_iter - it + 1, pct_start=0.15)
        xb, ybt = batch(x8, yb, rng.integers(0, len(x8), batch_size), g)
        out = net(xb)
        loss = F.binary_cross_entropy_with_logits(out, ybt) + soft_dice_loss(out, ybt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(loss.item())
        it += 1
        if it % 100 == 0:
            log(f"{organ}: iter {it}/{n_iter} loss {np.mean(losses[-100:]):.4f} ({time.time() - t0:.0f} s)")
            if checkpoint is not None:
                torch.save(net.state_dict(), checkpoint)
    net.eval()
    summary = {"iterations": it, "batch_size": batch_size, "minutes": round((time.time() - t0) / 60.0, 2),
               "train_slices": int(len(x8)), "positive_slices": int(yb.any(axis=(1, 2)).sum()),
               "final_loss": round(float(np.mean(losses[-50:])), 4), "seed": seed,
               "initialisation": f"{Path(init_from).name} bundle" if init_from is not None else "random"}
    return net, summary


def write_bundle(organ: str, net: torch.nn.Module, summary: dict, out_root: Path = BUNDLES) -> Path:
    lab = ORGAN_BY_NAME[organ]
    root = out_root / organ
    export_torchscript(net, root / "models" / "model.ts", fp16=True)
    window = list(pp.window_for(organ))
    meta_path = root / "configs" / "metadata.json"
    old = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    meta = {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/0.8.1/meta_schema_20220324.json",
        "name": f"organ_seg_{organ}", "version": VERSION,
        "changelog": {VERSION: "first CPU-trained version on synthetic CT (ICRP-110 AM/AF + procedural phantom)"},
        "task": f"Axial 2D segmentation of the {lab.display.lower()} on CT slices",
        "description": ("Light 2D residual U-Net (MONAI UNet, 2 residual units, channels 8-128) on axial CT "
                        "slices cropped to the body and resized to 224 x 304, one organ-family HU window. "
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
        "network": {"class": "monai.networks.nets.UNet", "spatial_dims": 2, "channels": list(CHANNELS),
                    "strides": [2, 2, 2, 2], "num_res_units": NUM_RES_UNITS, "norm": "batch",
                    "parameters": n_parameters(net)},
        "preprocess": "operators.organ_segmentation.preprocess (canonical, body_box, to_network with hu_window)",
        "training": summary,
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--organs", default=",".join(PRIORITY), help="comma-separated ALL_ORGANS names or 'all'")
    ap.add_argument("--minutes", type=float, default=2.0, help="training time per organ (sets the iterations)")
    ap.add_argument("--minutes-headline", type=float, default=None,
                    help="minutes for liver, lungs, kidneys, spleen (default: --minutes)")
    ap.add_argument("--iters", type=int, default=None, help="fixed iterations per organ (exact re-run)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(BUNDLES))
    ap.add_argument("--skip-existing", action="store_true", help="skip organs whose bundle already exists")
    ap.add_argument("--init-from", default=None,
                    help="start every organ (but itself) from this organ's trained bundle, e.g. liver")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    names = [o.name for o in ALL_ORGANS] if args.organs == "all" else [s.strip() for s in args.organs.split(",") if s.strip()]
    unknown = [n for n in names if n not in ORGAN_BY_NAME]
    if unknown:
        raise SystemExit(f"unknown organ(s): {', '.join(unknown)}")
    names = [n for n in PRIORITY if n in names] + [n for n in names if n not in PRIORITY]
    out = Path(args.out)
    if args.skip_existing:
        names = [n for n in names if not (out / n / "models" / "model.ts").is_file()]
    specs = D.case_specs("train")
    t0 = time.time()
    sets = organ_sets(names, specs, args.seed)
    print(f"slice sets for {len(names)} organs from {len(specs)} cases in {time.time() - t0:.0f} s", flush=True)
    ckpt_dir = D.CACHE / "ckpt"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    for organ in names:
        x8, yb = sets.pop(organ)
        if not len(x8):
            print(f"{organ}: no training slices (absent from every training case) - no bundle", flush=True)
            continue
        minutes = args.minutes_headline if (args.minutes_headline and organ in PRIORITY) else args.minutes
        init = out / args.init_from if (args.init_from and organ != args.init_from) else None
        net, summary = train_organ(organ, x8, yb, minutes, args.seed, args.iters,
                                   log=lambda s: print(s, flush=True), checkpoint=ckpt_dir / f"{organ}.pt",
                                   init_from=init)
        summary["cases"] = {"icrp110": sum(s.kind == "icrp" for s in specs),
                            "procedural": sum(s.kind == "phantom" for s in specs)}
        root = write_bundle(organ, net, summary, out)
        print(f"{organ}: bundle {root} ({summary})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
