"""Organ-dose report page (PNG): organ doses in mGy per method (network estimate with its uncertainty, Monte Carlo
when it ran) beside the scan's CTDIvol and SSDE, with the dose parameters and their source."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from operators.common.provenance import NOT_FOR_CLINICAL_USE

MC_MAX_REL_SIGMA = 0.5  # a Monte Carlo organ dose with a larger 1-sigma (or no energy at all) is not a result


def merge_monte_carlo(result: dict, mc_organ_doses: dict, mc_info: dict) -> dict:
    """Add Monte Carlo organ doses ({organ: (mean mGy, 1-sigma mGy)}) to a network result: as
    ``monte_carlo.organ_doses_mgy`` (method "monte_carlo") and, for organs the network did not give, in
    ``organ_doses_mgy`` too. Organs whose tally got no energy, or whose 1-sigma exceeds ``MC_MAX_REL_SIGMA`` of
    the mean (too few histories for a small organ), get no dose: they are listed under
    ``monte_carlo.insufficient_statistics`` (0 +- 0 mGy would read as a measured zero)."""
    out = dict(result)
    mc, weak = {}, {}
    for o, (m, s) in mc_organ_doses.items():
        m, s = float(m), float(s)
        if not m > 0.0 or s > MC_MAX_REL_SIGMA * m:
            weak[o] = "no energy deposited" if not m > 0.0 else f"1-sigma {s / m:.0%} of the mean"
            continue
        mc[o] = {"dose": round(m, 3), "method": "monte_carlo", "uncertainty": round(s, 3)}
    out["monte_carlo"] = {"organ_doses_mgy": mc, **mc_info}
    if weak:
        out["monte_carlo"]["insufficient_statistics"] = weak
        out["notes"] = [*out.get("notes", []), f"Monte Carlo: {len(weak)} organ(s) without a dose for lack of "
                        f"statistics ({', '.join(sorted(weak))}); raise the histories"]
    doses = dict(out.get("organ_doses_mgy", {}))
    for o, d in mc.items():
        doses.setdefault(o, d)
    out["organ_doses_mgy"] = doses
    return out


def render_report(result: dict, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    net = {o: d for o, d in result["organ_doses_mgy"].items() if d.get("method") == "network"}
    mc = result.get("monte_carlo", {}).get("organ_doses_mgy", {})
    organs = list(dict.fromkeys(list(net) + list(mc)))
    fig, ax = plt.subplots(figsize=(10, 5.5))
    x = np.arange(len(organs))
    if net:
        v = [net[o]["dose"] if o in net else np.nan for o in organs]
        e = [net[o].get("uncertainty") or 0.0 if o in net else 0.0 for o in organs]
        ax.bar(x - 0.2, v, 0.4, yerr=e, capsize=3, label="radiomics network", color="tab:blue")
    if mc:
        v = [mc[o]["dose"] if o in mc else np.nan for o in organs]
        e = [mc[o].get("uncertainty") or 0.0 if o in mc else 0.0 for o in organs]
        ax.bar(x + 0.2, v, 0.4, yerr=e, capsize=3, label="Monte Carlo", color="tab:green")
    if result.get("ctdivol_mgy") is not None:
        ax.axhline(result["ctdivol_mgy"], color="gray", ls="--", label=f"CTDIvol {result['ctdivol_mgy']:.2f} mGy")
    if result.get("ssde_mgy") is not None:
        ax.axhline(result["ssde_mgy"], color="tab:orange", ls=":", label=f"SSDE {result['ssde_mgy']:.2f} mGy")
    ax.set_xticks(x)
    ax.set_xticklabels(organs, rotation=30, ha="right")
    ax.set_ylabel("organ dose (mGy)")
    dp = result.get("dose_parameters", {})
    ctdi = result.get("ctdivol_mgy")
    ax.set_title(f"Organ doses - dose parameters from {result.get('dose_source')} "
                 f"(kVp {dp.get('kvp')}, CTDIvol {'?' if ctdi is None else f'{ctdi:.2f}'} mGy, "
                 f"regions {', '.join(result.get('regions', []))})", fontsize=10)
    ax.legend(fontsize=8)
    fig.text(0.01, 0.01, NOT_FOR_CLINICAL_USE + "; network trained on synthetic patients only", fontsize=8)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
