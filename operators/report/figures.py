"""The report's figures as PNG bytes (matplotlib, Agg): scan range on the ICRP-110 reference body, organ and
body-composition overlays (operators/common/render.py, radiological convention), waist indices against the
cut-offs, organ doses beside CTDIvol and SSDE."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

DPI = 110


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    plt = _plt()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def _keep(blank: np.ndarray, max_gap: int) -> np.ndarray:
    """Index mask keeping every non-blank line and at most ``max_gap`` lines of each blank run."""
    keep = ~blank
    run = 0
    for i, b in enumerate(blank):
        run = run + 1 if b else 0
        if b and run <= max_gap:
            keep[i] = True
    # leading blank lines count as a run too: trim them to max_gap as well
    lead = int(np.argmax(~blank)) if (~blank).any() else len(blank)
    keep[:max(lead - max_gap, 0)] = False
    return keep


def compact_png(png: bytes, max_gap: int = 14) -> bytes:
    """Remove white space wider than ``max_gap`` pixels between and around the panels of a figure (fixed-size
    panel grids leave large gaps when the images are not square)."""
    import matplotlib.image as mpimg

    img = mpimg.imread(io.BytesIO(png), format="png")
    white = (img[..., :3] > 0.985).all(axis=-1)
    rows, cols = _keep(white.all(axis=1), max_gap), _keep(white.all(axis=0), max_gap)
    out = io.BytesIO()
    mpimg.imsave(out, np.ascontiguousarray(img[rows][:, cols]), format="png")
    return out.getvalue()


def _render_to_bytes(fn, *args, **kwargs) -> bytes:
    """Run a render function that writes a PNG file (operators.common.render) and return the compacted bytes."""
    with tempfile.TemporaryDirectory(prefix="corpusct-report-") as tmp:
        path = fn(*args, out_png=Path(tmp) / "figure.png", **kwargs)
        return compact_png(Path(path).read_bytes())


def stack_png(pngs: Sequence[bytes], gap: int = 6) -> bytes:
    """Stack PNG images vertically (centred, white background): keeps a figure and its legend together."""
    import matplotlib.image as mpimg

    imgs = []
    for p in pngs:
        im = mpimg.imread(io.BytesIO(p), format="png")
        if im.shape[2] == 3:
            im = np.concatenate([im, np.ones(im.shape[:2] + (1,), im.dtype)], axis=2)
        imgs.append(im)
    w = max(im.shape[1] for im in imgs)
    h = sum(im.shape[0] for im in imgs) + gap * (len(imgs) - 1)
    out = np.ones((h, w, 4), np.float32)
    y = 0
    for im in imgs:
        x = (w - im.shape[1]) // 2
        out[y:y + im.shape[0], x:x + im.shape[1]] = im
        y += im.shape[0] + gap
    buf = io.BytesIO()
    mpimg.imsave(buf, out, format="png")
    return buf.getvalue()


def legend_png(label_table, ids: Sequence[int] | None = None, ncol: int = 3) -> bytes:
    """A colour legend for a label table (the classes ``ids`` only, if given)."""
    plt = _plt()
    labs = [lb for lb in label_table if ids is None or lb.id in set(ids)]
    fig = plt.figure(figsize=(6.4, 0.28 * ((len(labs) + ncol - 1) // ncol) + 0.15))
    handles = [plt.Rectangle((0, 0), 1, 1, color=np.asarray(lb.rgb) / 255.0) for lb in labs]
    fig.legend(handles, [lb.display for lb in labs], loc="center", ncol=ncol, fontsize=7, frameon=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return compact_png(buf.getvalue(), max_gap=4)


def range_diagram_png(scan_range_cm: Mapping, covered_parts: Sequence[str] | None = None) -> bytes:
    """The ICRP-110 reference body (AM / AF) with the scan range and its uncertainty, landmarks labelled
    (the diagram of operators/graynet_range/figure.py, drawn from the results dict alone)."""
    from operators.graynet_range.figure import draw_range_on_reference

    plt = _plt()
    phantom = str(scan_range_cm.get("phantom") or "AM").upper()
    lo, hi = float(scan_range_cm["start"]), float(scan_range_cm["end"])
    u = float(scan_range_cm.get("uncertainty") or 0.0)
    fig, ax = plt.subplots(figsize=(3.6, 5.6))
    draw_range_on_reference(ax, phantom, lo, hi, u, label_x=290.0, x_max=560.0, label_fontsize=6.5)
    ax.set_ylabel("ICRP-110 z (mm above the soles)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(f"ICRP-110 {phantom}: {lo:.1f} to {hi:.1f} cm\n(+-{u:.1f} cm)", fontsize=9)
    return _png(fig)


def _largest_slices(labels: np.ndarray, affine_lps: np.ndarray, n: int = 2) -> list[float]:
    """z (mm) of ``n`` axial slices through different organs: the slices with the most labelled voxels of the
    largest labels, at least 40 mm apart."""
    from operators.common.render import canonical_lps

    can, aff = canonical_lps(labels, affine_lps)
    ids, counts = np.unique(can[can > 0], return_counts=True)
    zs: list[float] = []
    for lid in ids[np.argsort(counts)[::-1]]:
        per = (can == lid).sum(axis=(1, 2))
        z = float(aff[2, 2] * int(np.argmax(per)) + aff[2, 3])
        if all(abs(z - o) >= 40.0 for o in zs):
            zs.append(z)
        if len(zs) == n:
            break
    return sorted(zs, reverse=True)


def organ_overlay_png(ct, labels: np.ndarray, label_table) -> bytes:
    """Axial slices through the largest organs and a coronal view through the organs' centre, CT above and
    masks below (operators/common/render.render_views)."""
    from operators.common.render import canonical_lps, render_views

    can, aff = canonical_lps(labels, ct.affine_lps)
    jj = np.nonzero(can.any(axis=(0, 2)))[0]
    y = float(aff[1, 1] * (jj.min() + jj.max()) / 2 + aff[1, 3]) if len(jj) else float(aff[1, 3])
    views = [("axial", z, "organs") for z in _largest_slices(labels, ct.affine_lps)] + [("coronal", y, "organs")]
    return _render_to_bytes(render_views, ct.hu, ct.affine_lps, views=views, labels=labels, label_table=label_table,
                            panel_size=3.4, crop_to=labels > 0)


def waist_slices_png(ct, labels: np.ndarray, levels: Sequence[tuple[str, float]]) -> bytes:
    """Axial slices at the waist bounds and L3 with the body-composition map (CT above, classes below)."""
    from operators.common.labels import BODY_COMPOSITION
    from operators.common.render import render_views

    views = [("axial", z, name) for name, z in levels]
    return _render_to_bytes(render_views, ct.hu, ct.affine_lps, views=views, labels=labels,
                            label_table=BODY_COMPOSITION, annotate=False, panel_size=3.0, crop_to=labels > 0)


def indices_png(waist: Mapping, sex: str | None, smi_cut: float | None, bfi_cut: float | None) -> bytes:
    """SMI and BFI of the waist as bars with the sex-specific cut-off as a dashed line."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(6.4, 1.9))
    items = [("SMI (cm2/m2)", waist.get("smi_cm2_m2"), smi_cut, "low below"),
             ("BFI (cm2/kg)", waist.get("bfi_cm2_kg"), bfi_cut, "high above")]
    for ax, (name, val, cut, rule) in zip(axes, items, strict=True):
        v = float(val) if val is not None else np.nan
        top = np.nanmax([v, cut if cut else np.nan, 1e-6]) * 1.35
        ax.barh([0], [0 if np.isnan(v) else v], color="#4a7fb5", height=0.5)
        ax.set_xlim(0, top)
        ax.set_yticks([])
        ax.set_title(f"{name}: {v:.2f}" if not np.isnan(v) else f"{name}: n/a", fontsize=9)
        ax.tick_params(labelsize=7)
        if cut:
            ax.axvline(cut, color="#c0392b", ls="--", lw=1.2)
            ax.text(cut, 0.42, f"{rule} {cut:g} ({sex})", color="#c0392b", fontsize=7, ha="center")
        else:
            ax.text(0.5, 0.8, "no cut-off: sex unknown", transform=ax.transAxes, fontsize=7, ha="center")
        ax.set_ylim(-0.5, 0.65)
    return _png(fig)


def dose_chart_png(doses: Mapping[str, tuple[float, float | None, str]], ctdivol_mgy: float | None,
                   ssde_mgy: float | None) -> bytes:
    """Horizontal bars of the organ doses (mGy, error bars = uncertainty where given), CTDIvol and SSDE as
    vertical lines; bars coloured by method."""
    plt = _plt()
    names = list(doses)[::-1]
    vals = np.array([doses[n][0] for n in names])
    errs = np.array([doses[n][1] if doses[n][1] is not None else 0.0 for n in names])
    methods = [doses[n][2] for n in names]
    palette = {"network": "#4a7fb5", "monte_carlo": "#e67e22"}
    colours = [palette.get(m, "#7f8c8d") for m in methods]
    fig, ax = plt.subplots(figsize=(6.4, max(2.2, 0.19 * len(names) + 1.1)))
    ax.barh(np.arange(len(names)), vals, xerr=errs, color=colours, height=0.7, error_kw={"lw": 0.8, "capsize": 2})
    ax.set_yticks(np.arange(len(names)))
    ax.set_yticklabels([n.replace("_", " ") for n in names], fontsize=7)
    ax.set_xlabel("dose (mGy)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    for val, name, colour, ls in ((ctdivol_mgy, "CTDIvol", "#2c3e50", "--"), (ssde_mgy, "SSDE", "#c0392b", ":")):
        if val is not None:
            ax.axvline(float(val), color=colour, ls=ls, lw=1.3, label=f"{name} {float(val):.2f} mGy")
    for m in sorted(set(methods)):
        ax.barh([np.nan], [np.nan], color=palette.get(m, "#7f8c8d"), label=f"organ dose ({m.replace('_', ' ')})")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16 - 1.2 / fig.get_figheight() / 10), ncol=2,
              frameon=False)
    ax.set_xlim(0, max([*vals + errs, ctdivol_mgy or 0, ssde_mgy or 0, 1e-3]) * 1.15)
    return _png(fig)
