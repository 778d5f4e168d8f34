"""Photon interaction data for the Monte Carlo dose engine (pure numpy, built once per run).

All tables are mass coefficients (cm^2/g) on a uniform energy grid (``E0_KEV`` + i * ``DE_KEV``); the
transport kernel multiplies by the voxel density. Cross sections come from xraylib (EPDL97-based):
photoelectric, incoherent (Compton, includes the incoherent scattering function) and coherent
(Rayleigh). Sampling tables: the incoherent scattering function S(x)/Z of the mixture (Klein-Nishina
rejection) and the cumulative squared form factor F^2 over x^2 (Rayleigh), x = sin(theta/2)/lambda in
1/Angstrom as in xraylib. K-shell fluorescence channels for elements with Z >= 20 whose K lines lie
above the transport cut-off.

xraylib's ``CS_Energy`` is NOT used (it is wrong below 100 keV). The kernel's local-deposition model is
the interaction itself (photoelectron energy minus the fluorescence photon it emits, Compton electron
energy); :func:`mu_en_table` computes the mass energy-absorption coefficient that model implies. The kernel
uses it for its expected-value kerma estimator (``PhysicsTables.mu_en``), and :func:`mu_en_mass` checks it
against NIST.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Grid constants live in kernels.py (the cached CPU kernel embeds them and numba's cache is keyed on
# that file only, so changing them there invalidates the cache).
from .kernels import (  # noqa: E402,F401
    DE_KEV,
    E0_KEV,
    ECUT_KEV,
    EMAX_KEV,
    HC_KEV_A,
    N_E,
    N_FF,
    N_FL,
    N_SF,
    XMAX,
)

_SYMBOLS = {
    "H": 1, "He": 2, "Li": 3, "Be": 4, "B": 5, "C": 6, "N": 7, "O": 8, "F": 9, "Ne": 10, "Na": 11,
    "Mg": 12, "Al": 13, "Si": 14, "P": 15, "S": 16, "Cl": 17, "Ar": 18, "K": 19, "Ca": 20, "Ti": 22,
    "Fe": 26, "Cu": 29, "Zn": 30, "I": 53, "Ba": 56, "Gd": 64, "W": 74, "Pb": 82,
}


def _xrl():
    import xraylib

    return xraylib


@dataclass(frozen=True)
class Material:
    """A medium: name, nominal density (g/cm^3) and elemental mass fractions {symbol or Z: fraction}."""

    name: str
    density: float
    composition: dict = field(default_factory=dict)

    def fractions(self) -> dict[int, float]:
        comp = {}
        for k, v in self.composition.items():
            z = int(k) if not isinstance(k, str) else _SYMBOLS[k]
            if v > 0:
                comp[z] = comp.get(z, 0.0) + float(v)
        tot = sum(comp.values())
        if tot <= 0:
            raise ValueError(f"material {self.name!r} has no composition")
        return {z: w / tot for z, w in sorted(comp.items())}


WATER = Material("water", 1.0, {"H": 0.111894, "O": 0.888106})
AIR = Material("air", 0.001205, {"C": 0.000124, "N": 0.755268, "O": 0.231781, "Ar": 0.012827})
PMMA = Material("PMMA", 1.19, {"H": 0.080541, "C": 0.599846, "O": 0.319613})
ALUMINIUM = Material("aluminium", 2.699, {"Al": 1.0})


def energy_grid() -> np.ndarray:
    return E0_KEV + DE_KEV * np.arange(N_E)


def mass_coefficients(mat: Material, energies_kev) -> dict[str, np.ndarray]:
    """photo / compton (incoherent) / rayleigh / total mass attenuation coefficients (cm^2/g)."""
    xrl = _xrl()
    e = np.atleast_1d(np.asarray(energies_kev, dtype=float))
    out = {k: np.zeros_like(e) for k in ("photo", "compton", "rayleigh")}
    for z, w in mat.fractions().items():
        out["photo"] += w * np.array([xrl.CS_Photo(z, float(x)) for x in e])
        out["compton"] += w * np.array([xrl.CS_Compt(z, float(x)) for x in e])
        out["rayleigh"] += w * np.array([xrl.CS_Rayl(z, float(x)) for x in e])
    out["total"] = out["photo"] + out["compton"] + out["rayleigh"]
    return out


def _electron_weights(mat: Material) -> dict[int, float]:
    """number of atoms of element Z per gram (relative), for mixing S and F^2 per molecule."""
    xrl = _xrl()
    return {z: w / xrl.AtomicWeight(z) for z, w in mat.fractions().items()}


def sf_table(mat: Material) -> np.ndarray:
    """S_mix(x) / Z_mix on x = linspace(0, XMAX, N_SF); rises from 0 to 1."""
    xrl = _xrl()
    x = np.linspace(0.0, XMAX, N_SF)
    num = np.zeros(N_SF)
    den = 0.0
    for z, n in _electron_weights(mat).items():
        num += n * np.array([xrl.SF_Compt(z, float(q)) if q > 0 else 0.0 for q in x])
        den += n * z
    return np.clip(num / den, 0.0, 1.0)


def ff_x_grid() -> np.ndarray:
    return XMAX * np.linspace(0.0, 1.0, N_FF) ** 2


def ff_cumulative(mat: Material) -> np.ndarray:
    """cumulative integral of F_mix^2(x) d(x^2) on ff_x_grid() (per molecule units, arbitrary scale)."""
    xrl = _xrl()
    x = ff_x_grid()
    f2 = np.zeros(N_FF)
    for z, n in _electron_weights(mat).items():
        f = np.array([xrl.FF_Rayl(z, float(q)) if q > 0 else float(z) for q in x])
        f2 += n * f * f
    x2 = x * x
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (f2[1:] + f2[:-1]) * np.diff(x2))])
    return cum


def fluorescence_channels(mat: Material, energies_kev) -> tuple[np.ndarray, np.ndarray]:
    """K-shell fluorescence channels: (line energies [N_FL], cumulative probability per energy
    [n_e, N_FL]) of emitting that line after a photoabsorption in the material at energy E."""
    xrl = _xrl()
    e = np.asarray(energies_kev, dtype=float)
    lines = np.zeros(N_FL)
    prob = np.zeros((e.size, N_FL))
    fr = mat.fractions()
    photo = np.zeros_like(e)
    for z, w in fr.items():
        photo += w * np.array([xrl.CS_Photo(z, float(x)) for x in e])
    ch = 0
    for z, w in fr.items():
        if z < 20:
            continue
        edge = xrl.EdgeEnergy(z, xrl.K_SHELL)
        omega = xrl.FluorYield(z, xrl.K_SHELL)
        jump = xrl.JumpFactor(z, xrl.K_SHELL)
        cs = w * np.array([xrl.CS_Photo(z, float(x)) for x in e])
        pk = np.where(e >= edge, cs * (1.0 - 1.0 / jump) / np.maximum(photo, 1e-30), 0.0)
        for line in (xrl.KA_LINE, xrl.KB_LINE):
            el = xrl.LineEnergy(z, line)
            if el < ECUT_KEV or ch >= N_FL:
                continue
            lines[ch] = el
            prob[:, ch] = pk * omega * xrl.RadRate(z, line)
            ch += 1
    return lines, np.cumsum(prob, axis=1)


@dataclass
class PhysicsTables:
    """Per-material tables indexed [material, ...]; see module docstring."""

    materials: list
    mu_photo: np.ndarray
    mu_compton: np.ndarray
    mu_rayleigh: np.ndarray
    mu_total: np.ndarray
    sf: np.ndarray
    ff_cum: np.ndarray
    fl_energy: np.ndarray
    fl_cum: np.ndarray
    mu_en: np.ndarray  # energy absorption implied by the deposition model (expected-value kerma estimator)

    @property
    def energies(self) -> np.ndarray:
        return energy_grid()

    def index(self, name: str) -> int:
        for i, m in enumerate(self.materials):
            if m.name == name:
                return i
        raise KeyError(name)

    def mu(self, mat_index: int, e_kev, kind: str = "total") -> np.ndarray:
        tab = {"total": self.mu_total, "photo": self.mu_photo, "compton": self.mu_compton,
               "rayleigh": self.mu_rayleigh}[kind][mat_index]
        return np.interp(e_kev, energy_grid(), tab)


_CACHE: dict = {}


def build_tables(materials: list[Material]) -> PhysicsTables:
    e = energy_grid()
    rows = []
    for m in materials:
        key = (m.name, m.density, tuple(sorted(m.fractions().items())))
        if key not in _CACHE:
            c = mass_coefficients(m, e)
            lines, flc = fluorescence_channels(m, e)
            sf = sf_table(m)
            _CACHE[key] = (c, sf, ff_cumulative(m), lines, flc, _mu_en(e, c, lines, flc, sf))
        rows.append(_CACHE[key])
    return PhysicsTables(
        materials=list(materials),
        mu_photo=np.array([r[0]["photo"] for r in rows]),
        mu_compton=np.array([r[0]["compton"] for r in rows]),
        mu_rayleigh=np.array([r[0]["rayleigh"] for r in rows]),
        mu_total=np.array([r[0]["total"] for r in rows]),
        sf=np.array([r[1] for r in rows]),
        ff_cum=np.array([r[2] for r in rows]),
        fl_energy=np.array([r[3] for r in rows]),
        fl_cum=np.array([r[4] for r in rows]),
        mu_en=np.array([r[5] for r in rows]),
    )


def mu_en_table(mat: Material, energies_kev, n_theta: int = 801) -> np.ndarray:
    """Mass energy-absorption coefficient (cm^2/g) at each energy implied by the kernel's local-deposition
    model: photoabsorption deposits E minus the emitted K-fluorescence energy, Compton deposits the electron
    energy (Klein-Nishina x S(x)/Z angular distribution, the kernel's sampler), Rayleigh deposits nothing.
    Bremsstrahlung losses of the secondary electrons are neglected (< 0.1 % below 150 keV in tissue)."""
    e = np.atleast_1d(np.asarray(energies_kev, dtype=float))
    lines, flc = fluorescence_channels(mat, e)
    return _mu_en(e, mass_coefficients(mat, e), lines, flc, sf_table(mat), n_theta)


def _mu_en(e: np.ndarray, coeffs: dict, lines: np.ndarray, flc: np.ndarray, sf: np.ndarray,
           n_theta: int = 801) -> np.ndarray:
    """:func:`mu_en_table` from the material's tables already computed on the energies ``e``."""
    p = np.diff(np.concatenate([np.zeros((e.size, 1)), flc], axis=1), axis=1)
    photo_dep = e - p @ lines
    ct = np.linspace(-1.0, 1.0, n_theta)[None, :]
    k = (e / 511.0)[:, None]
    ratio = 1.0 / (1.0 + k * (1.0 - ct))
    kn = ratio**2 * (ratio + 1.0 / ratio - (1.0 - ct**2))
    x = (e / HC_KEV_A)[:, None] * np.sqrt((1.0 - ct) / 2.0)
    wgt = kn * np.interp(x, np.linspace(0.0, XMAX, N_SF), sf)
    mean_t = e * np.trapezoid(wgt * (1.0 - ratio), ct, axis=1) / np.trapezoid(wgt, ct, axis=1)
    return (coeffs["photo"] * photo_dep + coeffs["compton"] * mean_t) / e


def mu_en_mass(mat: Material, e_kev: float, n_theta: int = 4000) -> float:
    """:func:`mu_en_table` at one energy."""
    return float(mu_en_table(mat, [e_kev], n_theta)[0])


def read_mcgpu_table(path: Path) -> dict[str, np.ndarray]:
    """MC-GPU material file -> energies (keV), density and linear mu (1/cm) per process at that density."""
    opener = gzip.open if str(path).endswith(".gz") else open
    dens = None
    rows = []
    with opener(path, "rt") as fh:
        lines = fh.readlines()
    for i, ln in enumerate(lines):
        if ln.startswith("#[NOMINAL DENSITY"):
            dens = float(lines[i + 1].strip("# \n"))
        if ln.startswith("#[MEAN FREE PATHS"):
            j = i + 2
            while j < len(lines) and not lines[j].startswith("#"):
                rows.append([float(v) for v in lines[j].split()[:5]])
                j += 1
            break
    a = np.array(rows)
    return {"energy_kev": a[:, 0] / 1000.0, "density": dens, "rayleigh": 1.0 / a[:, 1],
            "compton": 1.0 / a[:, 2], "photo": 1.0 / a[:, 3], "total": 1.0 / a[:, 4]}


def icrp110_media(path: Path) -> dict[str, Material]:
    """ICRP-110 ``*_media.dat`` -> {medium name: Material} (density 1; densities come from organs.csv)."""
    lines = Path(path).read_text(errors="replace").splitlines()
    zs = [int(t) for t in lines[0].split()]
    out = {}
    for ln in lines[3:]:
        parts = ln.split()
        if len(parts) < len(zs) + 2 or not parts[0].isdigit():
            continue
        vals = [float(v) for v in parts[-len(zs):]]
        name = " ".join(parts[1:-len(zs)])
        out[name] = Material(name, 1.0, dict(zip(zs, vals, strict=True)))
    return out
