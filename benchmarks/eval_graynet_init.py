"""GrayNet's encoder as the pretrained initialisation of an organ network: Dice with and without it, as the GrayNet
paper reports for its U-Net (papers/graynet-range-selector.txt: liver 0.88 -> 0.97, spleen 0.90 -> 0.95, kidneys
0.57 -> 0.93 with GrayNet's weights and range).

    python benchmarks/eval_graynet_init.py --organs kidneys,spleen,liver --iters 500 --init graynet
    python benchmarks/eval_graynet_init.py --organs kidneys,spleen,liver --iters 500 --init random
    python benchmarks/eval_graynet_init.py --table    # both arms' results side by side

For each organ and arm: ``models.organ_segmentation.graynet_unet.GrayNetUNet`` (GrayNet's windows, stem and conv
blocks as the encoder, a U-Net decoder), initialised from the GrayNet bundle (``graynet``) or at random
(``random``, the same architecture), trained with the same seed, slices, batches, augmentation and one-cycle
schedule as the organ bundles' fine-tuning stage (``train._fit``: AdamW, peak 3e-3, batch 8, shift +-12 px; the
intensity augmentation is applied in HU: gain 0.97-1.03, offset +-15 HU, noise up to 10 HU) on the organ's
``data.organ_slices`` of the 168 training cases, HU rebuilt from the three cached window images
(``graynet_unet.hu_from_windows``). Evaluation as ``eval_organ_segmentation.py``: the held-out test cases holding
the organ, the slices of its true z extent +- 30 mm, end to end on the original grid (the operator's crop and
resize of the three windows, HU rebuilt the same way), Dice and Jaccard. ``--seed`` other than 0 repeats a run
with other batches and initial decoder weights (results keyed "organ (seed N)"), to see the run-to-run spread.
Results in
``build/organ_seg/graynet_init_<arm>.json``. Each arm is one thread: run the two arms side by side.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval_organ_segmentation import MARGIN_MM, dice_jaccard  # noqa: E402

from models.organ_segmentation import data as D  # noqa: E402
from models.organ_segmentation.graynet_unet import GrayNetUNet, hu_from_windows, load_graynet_encoder  # noqa: E402
from models.organ_segmentation.network import n_parameters  # noqa: E402
from models.organ_segmentation.train import _fit, organ_sets, soft_dice_loss  # noqa: E402
from operators.common.labels import organ_mask  # noqa: E402
from operators.common.paths import REPO_ROOT  # noqa: E402
from operators.organ_segmentation import preprocess as pp  # noqa: E402

OUT = D.CACHE


def training_slices(organ: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(x uint8 (n, 3, 224, 304) the three window images, y bool (n, 224, 304)): the slices the organ's fine-tuning
    stage uses (``train.organ_sets``), all three windows kept. One organ per call: its own generator for the
    negative slices, so each organ's slices do not depend on which other organs a run lists."""
    return organ_sets([organ], D.case_specs("train"), seed, all_windows=True)[organ]


def train_arm(organ: str, init: str, iters: int, seed: int, log=print) -> tuple[GrayNetUNet, dict]:
    x8, yb = training_slices(organ, seed)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    net = GrayNetUNet()
    loaded = load_graynet_encoder(net, REPO_ROOT / "models" / "graynet") if init == "graynet" else []

    def step(_it):
        idx = rng.integers(0, len(x8), 8)
        hu = torch.from_numpy(hu_from_windows(x8[idx])).unsqueeze(1)
        y = torch.from_numpy(yb[idx].astype(np.float32)).unsqueeze(1)
        dy, dx = (int(v) for v in torch.randint(-12, 13, (2,), generator=g))
        hu, y = torch.roll(hu, (dy, dx), (2, 3)), torch.roll(y, (dy, dx), (2, 3))
        n = hu.shape[0]
        hu = hu * torch.empty(n, 1, 1, 1).uniform_(0.97, 1.03, generator=g) \
            + torch.empty(n, 1, 1, 1).uniform_(-15.0, 15.0, generator=g) \
            + torch.randn(hu.shape, generator=g) * torch.empty(n, 1, 1, 1).uniform_(0.0, 10.0, generator=g)
        out = net(hu)
        return F.binary_cross_entropy_with_logits(out, y) + soft_dice_loss(out, y)

    summary = _fit(net, step, 0.0, iters, f"{organ}/{init}", log)
    summary.update({"init": init, "graynet_parameters_loaded": len(loaded), "train_slices": int(len(x8)),
                    "seed": seed, "parameters": n_parameters(net)})
    return net, summary


def network_hu(hu_c: np.ndarray, box: pp.Box, ks: np.ndarray) -> np.ndarray:
    """HU on the network grid (len(ks), 224, 304) rebuilt from the operator's three window images, as in training."""
    return hu_from_windows(D.window_images(hu_c, box, slices=ks))


def evaluate(net: GrayNetUNet, organ: str) -> list[dict]:
    net.eval()
    rows = []
    for spec in D.case_specs("test"):
        c = D.load_case(D.build_case(spec, full_res=True))
        ref = organ_mask(c["organs_c"], organ)
        zs = np.nonzero(ref.any(axis=(1, 2)))[0]
        if not len(zs):
            continue
        hu_c = c["hu_c"].astype(np.float32)
        aff = c["affine_c"]
        box = pp.body_box(hu_c, D.spacing_yx(aff))
        z = D.slice_z_mm(aff, np.arange(hu_c.shape[0]))
        ks = np.nonzero((z >= z[zs[0]] - MARGIN_MM) & (z <= z[zs[-1]] + MARGIN_MM))[0]
        x = network_hu(hu_c, box, ks)
        probs = np.empty(x.shape, np.float32)
        with torch.inference_mode():
            for i in range(0, len(x), 16):
                probs[i:i + 16] = torch.sigmoid(net(torch.from_numpy(x[i:i + 16]).unsqueeze(1)))[:, 0].numpy()
        pred = np.zeros(hu_c.shape, bool)
        pred[ks] = pp.from_network(probs, box, (len(ks), *hu_c.shape[1:])) >= 0.5
        d, j = dice_jaccard(pred, ref)
        rows.append({"case": spec.name, "dice": round(d, 4), "jaccard": round(j, 4)})
    return rows


def table() -> int:
    arms = {a: json.loads((OUT / f"graynet_init_{a}.json").read_text()) for a in ("random", "graynet")
            if (OUT / f"graynet_init_{a}.json").is_file()}
    organs = sorted({o for r in arms.values() for o in r})
    print(f"{'organ':18s} " + " ".join(f"{a + ' Dice':>14s} {'per case':>30s}" for a in arms))
    for o in organs:
        cells = []
        for r in arms.values():
            if o in r:
                per_case = " ".join(f"{c['dice']:.3f}" for c in r[o]["cases"])
                cells.append(f"{r[o]['dice_mean']:14.3f} {per_case:>30s}")
        print(f"{o:18s} " + " ".join(cells))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--organs", default="kidneys,spleen,liver")
    ap.add_argument("--init", choices=("graynet", "random"))
    ap.add_argument("--iters", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--table", action="store_true", help="print the two arms' saved results")
    args = ap.parse_args(argv)
    if args.table:
        return table()
    if not args.init:
        ap.error("--init graynet|random (or --table)")
    torch.set_num_threads(1)
    out = OUT / f"graynet_init_{args.init}.json"
    results = json.loads(out.read_text()) if out.is_file() else {}
    for organ in args.organs.split(","):
        t0 = time.time()
        net, summary = train_arm(organ, args.init, args.iters, args.seed, log=lambda s: print(s, flush=True))
        rows = evaluate(net, organ)
        dv = np.array([r["dice"] for r in rows])
        key = organ if args.seed == 0 else f"{organ} (seed {args.seed})"
        results[key] = {"dice_mean": round(float(dv.mean()), 4), "jaccard_mean":
                          round(float(np.mean([r["jaccard"] for r in rows])), 4), "cases": rows, "training": summary,
                          "minutes_total": round((time.time() - t0) / 60.0, 1)}
        print(f"{organ} {args.init}: Dice {dv.mean():.3f} ({', '.join(f'{d:.3f}' for d in dv)})", flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
