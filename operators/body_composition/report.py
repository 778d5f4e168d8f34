"""PNG report page: coronal overview with the waist and L3 lines, axial slices at the waist's top, L3 and
bottom (CT and mask overlay), the metrics against the cut-offs and the sources. matplotlib only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from operators.common.labels import BODY_COMPOSITION
from operators.common.provenance import NOT_FOR_CLINICAL_USE
from operators.common.render import canonical_lps, save_figure

from .metrics import BFI_CUTOFF_CM2_KG, SMI_CUTOFF_CM2_M2, BodyCompositionResult


def _lut() -> np.ndarray:
    lut = np.zeros((256, 4), np.float32)
    for lab in BODY_COMPOSITION:
        lut[lab.id, :3] = np.asarray(lab.rgb, np.float32) / 255.0
        lut[lab.id, 3] = 0.5
    return lut


def _metrics_text(res: BodyCompositionResult) -> str:
    p = res.patient
    lines = [f"status: {res.status}"]
    if res.reason:
        lines.append(f"reason: {res.reason[:90]}")
    if res.waist:
        w = res.waist
        sex = p.sex or "?"
        lines += [f"waist length {w['length_cm']} cm ({res.waist_source})",
                  f"SMA {w['sma_cm2']} cm2   BFA {w['bfa_cm2']} cm2 (SF {w['sfa_cm2']}, AVF {w['avfa_cm2']})",
                  f"SMI {w['smi_cm2_m2']} cm2/m2  (low if < {SMI_CUTOFF_CM2_M2.get(sex, '?')}, sex {sex})"
                  f"  -> low_smi={res.flags['low_smi']}",
                  f"BFI {w['bfi_cm2_kg']} cm2/kg  (high if > {BFI_CUTOFF_CM2_KG.get(sex, '?')})"
                  f"  -> high_bfi={res.flags['high_bfi']}"]
    if res.l3:
        lines.append(f"L3 slice (z {res.l3['z_mm']} mm): SMA {res.l3['sma_cm2']}, BFA {res.l3['bfa_cm2']} cm2")
    lines += [f"height {p.height_m} m: {p.height_source}"[:100], f"weight {p.weight_kg} kg: {p.weight_source}"[:100],
              f"sex {p.sex}: {p.sex_source}"[:100], "volumes (cm3): " + ", ".join(
                  f"{k[:6]} {v:.0f}" for k, v in res.volumes_cm3.items()), NOT_FOR_CLINICAL_USE]
    return "\n".join(lines)


def render_report(hu: np.ndarray, labels: np.ndarray, affine_lps: np.ndarray, res: BodyCompositionResult,
                  out_png: str | Path, title: str = "CorpusCT body composition") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ct, aff = canonical_lps(hu, affine_lps)
    lab = canonical_lps(labels, affine_lps)[0]
    dz, dy, dx = abs(aff[2, 2]), abs(aff[1, 1]), abs(aff[0, 0])
    z = aff[2, 2] * np.arange(ct.shape[0]) + aff[2, 3]
    lut = _lut()
    levels = []
    if res.waist:
        levels = [("waist top (lowest rib)", res.waist["superior_z_mm"] - dz / 2),
                  ("L3", res.l3["z_mm"] if res.l3 else None),
                  ("waist bottom (iliac crest)", res.waist["inferior_z_mm"] + dz / 2)]
    else:
        levels = [("centre", float(np.median(z)))]
    levels = [(n, v) for n, v in levels if v is not None]
    fig, axes = plt.subplots(2, len(levels) + 1, figsize=(4.2 * (len(levels) + 1), 8.6), squeeze=False)
    body = ct > -400
    for c, (name, zz) in enumerate(levels):
        k = int(np.argmin(np.abs(z - zz)))
        jj, ii = np.nonzero(body[k])
        box = (slice(max(jj.min() - 5, 0), jj.max() + 6), slice(max(ii.min() - 5, 0), ii.max() + 6)) if len(jj) else \
            (slice(None), slice(None))
        for r in range(2):
            ax = axes[r, c]
            ax.imshow(ct[k][box], cmap="gray", vmin=-160, vmax=240, aspect=dy / dx, interpolation="nearest")
            if r == 1:
                ax.imshow(lut[lab[k][box]], aspect=dy / dx, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.text(0.01, 0.5, "R", transform=ax.transAxes, color="yellow", fontsize=9)
        axes[0, c].set_title(f"{name}\nz {z[k]:.0f} mm", fontsize=9)
    j = int(np.argmax(body.sum(axis=(0, 2))))  # coronal plane through the body's widest row
    j = int(np.median(np.nonzero(body.any(axis=(0, 2)))[0])) if body.any() else ct.shape[1] // 2
    ax = axes[0, -1]
    ax.imshow(ct[::-1, j], cmap="gray", vmin=-160, vmax=240, aspect=dz / dx, interpolation="nearest")
    ax.imshow(lut[lab[::-1, j]], aspect=dz / dx, interpolation="nearest")
    for name, zz in levels:
        row = (ct.shape[0] - 1) - (zz - aff[2, 3]) / aff[2, 2]
        ax.axhline(row, color="yellow" if name == "L3" else "white", lw=1)
    ax.set_title("coronal: waist (white), L3 (yellow)", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax = axes[1, -1]
    ax.axis("off")
    ax.text(0.0, 1.0, _metrics_text(res), va="top", ha="left", fontsize=7, family="monospace", wrap=True)
    handles = [plt.Rectangle((0, 0), 1, 1, color=np.asarray(lb.rgb) / 255) for lb in BODY_COMPOSITION]
    ax.legend(handles, [lb.display for lb in BODY_COMPOSITION], loc="lower left", fontsize=7, frameon=False)
    fig.suptitle(f"{title} - {NOT_FOR_CLINICAL_USE}", fontsize=10)
    return save_figure(fig, out_png)
