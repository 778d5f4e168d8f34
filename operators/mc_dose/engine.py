"""Geometry, source and run driver for the Monte Carlo engine (CPU and CUDA backends)."""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from operators.common.progress import Progress

from . import physics as ph

log = logging.getLogger(__name__)

# energy-deposition estimators of the kernels (kernels.py docstring): "expected" (expected-value kerma at every
# tentative collision; low variance in small regions) or "analog" (at real interactions; energy conserved
# history by history, which the transport tests check)
ESTIMATORS = ("expected", "analog")


def _estimator_flag(estimator: str, geom: VoxelGeometry) -> int:
    if estimator not in ESTIMATORS:
        raise ValueError(f"Monte Carlo estimator {estimator!r}: expected one of {ESTIMATORS}")
    if estimator == "analog" and geom.scores_other_media:
        raise ValueError("bins scoring another medium's kerma (VoxelGeometry.score_material) need the expected "
                         "estimator: the analog one deposits what a real interaction leaves in the voxel's own")
    return int(estimator == "expected")


@dataclass
class VoxelGeometry:
    """Voxel phantom: ``material`` (z,y,x) int indices into ``materials``, ``density`` (z,y,x) g/cm^3,
    ``tally_map`` (z,y,x) int32 scoring bin (-1 none), ``origin`` (z0,y0,x0) of the grid corner and
    ``spacing`` (dz,dy,dx), both in cm. x, y, z are the transport frame (cm).

    Outside the grid: vacuum when ``background`` is None; otherwise the ``background`` medium fills the
    world box (the smallest box holding the grid and every focal spot, enlarged by ``world_margin_cm``) and
    photons are transported there like anywhere else (attenuation, Compton and Rayleigh scatter back into
    the grid, energy deposited in the medium counted as unscored)."""

    material: np.ndarray
    density: np.ndarray
    materials: list
    tally_map: np.ndarray
    n_bins: int
    origin: tuple = (0.0, 0.0, 0.0)
    spacing: tuple = (0.1, 0.1, 0.1)
    background: ph.Material | None = None  # medium around the grid (None: vacuum), transported in full
    world_margin_cm: float = 10.0  # the background fills the box holding the grid and every focal spot, plus this
    # per bin (n_bins,): the index into ``materials`` of the medium whose kerma the bin scores (-1, the default:
    # its voxels' own) and that medium's density (g/cm^3; the bin's mass is then its volume x this). Transport
    # is unchanged; the expected-value estimator only (mc_dose.dose.SOFT_KERMA_ORGANS uses it)
    score_material: np.ndarray | None = None
    score_density: np.ndarray | None = None

    def __post_init__(self):
        if self.material.shape != self.density.shape or self.material.shape != self.tally_map.shape:
            raise ValueError("material, density and tally_map must have the same shape")
        if self.tally_map.max(initial=-1) >= self.n_bins:
            raise ValueError("tally_map holds a bin >= n_bins")
        if (self.score_material is None) != (self.score_density is None):
            raise ValueError("score_material and score_density go together")
        if self.score_material is not None:
            sm = np.asarray(self.score_material)
            if sm.shape != (self.n_bins,) or np.shape(self.score_density) != (self.n_bins,):
                raise ValueError(f"score_material and score_density need one value per bin ({self.n_bins})")
            if sm.max(initial=-1) >= len(self.materials):
                raise ValueError("score_material names a medium outside materials")
            if np.any(np.asarray(self.score_density)[sm >= 0] <= 0):
                raise ValueError("a scoring medium needs a positive density")

    @property
    def scores_other_media(self) -> bool:
        return self.score_material is not None and bool(np.any(np.asarray(self.score_material) >= 0))

    def bin_scoring(self) -> tuple[np.ndarray, np.ndarray]:
        """(medium index, density) per tally bin including the four bookkeeping bins (-1, 0: the voxel's own)."""
        mat = np.full(self.n_bins + 4, -1, np.int32)
        rho = np.zeros(self.n_bins + 4)
        if self.score_material is not None:
            mat[: self.n_bins] = self.score_material
            rho[: self.n_bins] = np.where(mat[: self.n_bins] >= 0, self.score_density, 0.0)
        return mat, rho


@dataclass
class Source:
    """Isotropic point source(s) collimated to a rectangle: per projection a focal position, central
    axis ``u`` (unit), fan axis ``v`` and cone axis ``w``; half-openings ``fan_tan`` and ``cone_tan``
    (tangents on the plane at unit distance along u); ``weights`` relative photons per projection (e.g.
    mA); spectrum as bins (``spec_lo``, ``spec_width``, ``spec_weight``; width 0: monoenergetic);
    optional bowtie: thickness (cm) of ``bowtie_material`` sampled uniformly across the fan."""

    positions: np.ndarray
    u: np.ndarray
    v: np.ndarray
    w: np.ndarray
    fan_tan: float
    cone_tan: float
    spec_lo: np.ndarray
    spec_width: np.ndarray
    spec_weight: np.ndarray
    weights: np.ndarray | None = None
    bowtie_thickness: np.ndarray | None = None
    bowtie_material: ph.Material | None = None

    @property
    def n_projections(self) -> int:
        return len(self.positions)

    def mean_energy(self) -> float:
        p = self.spec_weight / self.spec_weight.sum()
        return float(np.sum(p * (self.spec_lo + 0.5 * self.spec_width)))


def monoenergetic(e_kev: float):
    return np.array([e_kev]), np.array([0.0]), np.array([1.0])


def binned_spectrum(centres_kev, weights):
    c = np.asarray(centres_kev, float)
    wdt = np.gradient(c) if c.size > 1 else np.array([0.0])
    return c - 0.5 * wdt, wdt, np.asarray(weights, float)


def fan_source(angles_deg, distance_cm, fan_tan, cone_tan, spectrum, z_positions=None, weights=None,
               isocentre=(0.0, 0.0, 0.0), start="-y", bowtie_thickness=None, bowtie_material=None) -> Source:
    """Focal spots on a circle of radius ``distance_cm`` around ``isocentre`` in the x-y plane.
    start '-y': angle 0 at (0, -d, 0) (TG-195 case 5), '-x': at (-d, 0, 0) (TG-195 case 4).
    Angle a rotates the source by -a about z (TG-195 case 5 convention)."""
    a = np.deg2rad(np.asarray(angles_deg, float))
    n = a.size
    zs = np.zeros(n) if z_positions is None else np.asarray(z_positions, float)
    base = {"-y": np.array([0.0, -1.0]), "-x": np.array([-1.0, 0.0])}[start]
    ca, sa = np.cos(-a), np.sin(-a)
    sx = ca * base[0] - sa * base[1]
    sy = sa * base[0] + ca * base[1]
    iso = np.asarray(isocentre, float)
    pos = np.stack([iso[0] + distance_cm * sx, iso[1] + distance_cm * sy, iso[2] + zs], axis=1)
    u = np.stack([-sx, -sy, np.zeros(n)], axis=1)
    v = np.stack([-u[:, 1], u[:, 0], np.zeros(n)], axis=1)
    w = np.tile([0.0, 0.0, 1.0], (n, 1))
    lo, wd, wt = spectrum
    return Source(pos, u, v, w, float(fan_tan), float(cone_tan), lo, wd, wt,
                  None if weights is None else np.asarray(weights, float),
                  None if bowtie_thickness is None else np.asarray(bowtie_thickness, float), bowtie_material)


@dataclass
class MCResult:
    mean_kev: np.ndarray  # per bin, keV per history
    std_kev: np.ndarray  # standard error of the mean per bin
    histories: int
    seconds: float
    escaped_kev: float
    emitted_kev: float
    unscored_kev: float
    backend: str
    extra: dict = field(default_factory=dict)

    @property
    def conservation_error(self) -> float:
        """|deposited + escaped - emitted| / emitted: rounding only (< 1e-12) with the analog estimator; with
        the expected-value one, the statistical difference between expected and actual deposits."""
        dep = self.mean_kev.sum() + self.unscored_kev + self.escaped_kev
        return abs(dep - self.emitted_kev) / max(self.emitted_kev, 1e-300)

    @property
    def rel_std(self) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.mean_kev > 0, self.std_kev / self.mean_kev, np.inf)

    @property
    def histories_per_second(self) -> float:
        return self.histories / self.seconds if self.seconds > 0 else float("nan")


def pack_voxels(material: np.ndarray, density: np.ndarray) -> np.ndarray:
    """uint32 voxel words for the kernels: material index << RHO_BITS | density / RHO_UNIT (rounded)."""
    from .kernels import RHO_BITS, RHO_MASK, RHO_UNIT

    mat = np.asarray(material).ravel()
    rho = np.asarray(density, np.float64).ravel()
    if mat.size and (mat.min() < 0 or mat.max() >= 2 ** (32 - RHO_BITS)):
        raise ValueError(f"material indices must lie in 0..{2 ** (32 - RHO_BITS) - 1}")
    q = np.rint(rho / RHO_UNIT)
    if q.size and (q.min() < 0 or q.max() > RHO_MASK):
        raise ValueError(f"densities must lie in 0..{RHO_MASK * RHO_UNIT:.1f} g/cm^3")
    return (mat.astype(np.uint32) << np.uint32(RHO_BITS)) | q.astype(np.uint32)


MACRO_CELL_CM = 1.5  # macro-cell edge for the local majorants (a few mean free paths per cell in tissue)


def macro_cells(tables: ph.PhysicsTables, shape, spacing, vox: np.ndarray, cell_cm: float = MACRO_CELL_CM):
    """Local majorants for delta tracking: the grid cut into cells of about ``cell_cm``; per cell the
    largest density and the class (set of materials present); per class and energy bin the largest mass
    attenuation coefficient of its materials over the bin (a strict bound of the interpolated value).
    Returns (cell_rho [cells], cell_cls [cells] int32, cls_mu [classes, N_E], cshape (3,), csize (3,))."""
    from .kernels import RHO_BITS, RHO_MASK, RHO_UNIT

    nz, ny, nx = (int(n) for n in shape)
    csize = np.array([max(1, min(n, int(round(cell_cm / float(d))))) for n, d in zip((nz, ny, nx), spacing,
                                                                                       strict=True)])
    cshape = np.array([-(-n // c) for n, c in zip((nz, ny, nx), csize, strict=True)])
    pad = [(0, int(cs * c - n)) for n, cs, c in zip((nz, ny, nx), cshape, csize, strict=True)]
    mat = np.pad((vox >> np.uint32(RHO_BITS)).astype(np.int32).reshape(nz, ny, nx), pad, constant_values=-1)
    rho = np.pad(((vox & np.uint32(RHO_MASK)) * RHO_UNIT).reshape(nz, ny, nx), pad)  # densities the kernel sees
    blk = (cshape[0], csize[0], cshape[1], csize[1], cshape[2], csize[2])
    cell_rho = rho.reshape(blk).max(axis=(1, 3, 5)).ravel()
    n_mat = tables.mu_total.shape[0]
    present = np.stack([(mat == k).reshape(blk).any(axis=(1, 3, 5)).ravel() for k in range(n_mat)], axis=1)
    classes, cell_cls = np.unique(present, axis=0, return_inverse=True)
    mu = tables.mu_total
    upper = np.concatenate([np.maximum(mu[:, :-1], mu[:, 1:]), mu[:, -1:]], axis=1)  # per energy bin
    cls_mu = np.array([upper[c].max(axis=0) if c.any() else np.zeros(mu.shape[1]) for c in classes])
    return (cell_rho.astype(np.float64), cell_cls.ravel().astype(np.int32), cls_mu * (1.0 + 1e-9),
            cshape.astype(np.int64), csize.astype(np.int64))


def prepare(geom: VoxelGeometry, source: Source):
    """Everything the kernels need, as contiguous arrays in a fixed order."""
    mats = list(geom.materials)
    extra = []
    bow_idx = -1
    bg_idx = -1
    if source.bowtie_material is not None and source.bowtie_thickness is not None:
        bow_idx = len(mats) + len(extra)
        extra.append(source.bowtie_material)
    if geom.background is not None:
        bg_idx = len(mats) + len(extra)
        extra.append(geom.background)
    tables = ph.build_tables(mats + extra)
    vox = pack_voxels(geom.material, geom.density)
    cells = macro_cells(ph.PhysicsTables(**{**tables.__dict__, "materials": tables.materials[: len(mats)],
                                            "mu_total": tables.mu_total[: len(mats)]}),
                        geom.material.shape, geom.spacing, vox, MACRO_CELL_CM)
    lo = np.array([geom.origin[2], geom.origin[1], geom.origin[0]], float)
    hi = lo + np.array(geom.material.shape[::-1], float) * np.array(geom.spacing[::-1], float)
    pos = np.asarray(source.positions, float)
    world = np.concatenate([np.minimum(lo, pos.min(axis=0)) - geom.world_margin_cm,
                            np.maximum(hi, pos.max(axis=0)) + geom.world_margin_cm])
    wts = np.ones(source.n_projections) if source.weights is None else source.weights
    pc = np.cumsum(wts) / np.sum(wts)
    pc[-1] = 1.0
    sc = np.cumsum(source.spec_weight) / np.sum(source.spec_weight)
    sc[-1] = 1.0
    f8 = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
    bow_t = f8(source.bowtie_thickness if bow_idx >= 0 else np.zeros(2))
    args = (
        f8(source.positions), f8(source.u), f8(source.v), f8(source.w), f8(pc),
        float(source.fan_tan), float(source.cone_tan), bow_t, int(bow_idx),
        float(source.bowtie_material.density) if bow_idx >= 0 else 0.0,
        f8(source.spec_lo), f8(source.spec_width), f8(sc), int(bg_idx),
        float(geom.background.density) if bg_idx >= 0 else 0.0, f8(world),
        vox,
        np.ascontiguousarray(geom.tally_map.ravel(), dtype=np.int32),
        np.asarray(geom.material.shape, dtype=np.int64), f8(geom.origin), f8(geom.spacing), *cells,
        f8(tables.mu_total), f8(tables.mu_photo), f8(tables.mu_compton), f8(tables.sf), f8(tables.ff_cum),
        f8(tables.fl_energy), f8(tables.fl_cum), f8(tables.mu_en), *geom.bin_scoring(),
    )
    return args, tables


def _summarise(tally, n_per_batch, seconds, backend, nbins) -> MCResult:
    per_batch = tally / n_per_batch  # keV per history in each batch
    nb = tally.shape[0]
    mean = per_batch.mean(axis=0)
    std = per_batch.std(axis=0, ddof=1) / math.sqrt(nb) if nb > 1 else np.full_like(mean, np.nan)
    return MCResult(mean[:nbins], std[:nbins], int(n_per_batch * nb), seconds, float(mean[nbins]),
                    float(mean[nbins + 1]), float(mean[nbins + 2]), backend,
                    {"n_batches": nb, "escaped_std": float(std[nbins]), "primary_escaped_kev": float(mean[nbins + 3]),
                     "primary_escaped_std": float(std[nbins + 3]), "per_batch_kev": per_batch[:, :nbins]})


def run_cpu(geom: VoxelGeometry, source: Source, n_histories: int, n_batches: int = 32, seed: int = 1,
            prepared=None, estimator: str = "expected") -> MCResult:
    """CPU backend: parallel over batches (numba prange), one xoroshiro128+ stream per batch."""
    from numba.cuda.random import init_xoroshiro128p_states_cpu, xoroshiro128p_dtype

    from .kernels import cpu_run

    flag = _estimator_flag(estimator, geom)
    args, _ = prepared if prepared is not None else prepare(geom, source)
    n_per = max(1, int(math.ceil(n_histories / n_batches)))
    states = np.empty(n_batches, dtype=xoroshiro128p_dtype)
    init_xoroshiro128p_states_cpu(states, np.uint64(seed), np.uint64(0))
    tally = np.zeros((n_batches, geom.n_bins + 4))
    t = time.perf_counter()
    # batches in chunks of one per thread (each batch owns its stream and tally row, so the result is the
    # same as one call) to log progress and time remaining between chunks
    import numba

    chunk = max(1, numba.get_num_threads())
    with Progress(n_batches, "Monte Carlo (CPU)", unit="batches", log=log) as prog:
        for b0 in range(0, n_batches, chunk):
            cpu_run(n_per, states[b0:b0 + chunk], *args, flag, tally[b0:b0 + chunk])
            prog.update(min(chunk, n_batches - b0))
    res = _summarise(tally, n_per, time.perf_counter() - t, "cpu", geom.n_bins)
    res.extra["estimator"] = estimator
    return res


def run_cuda(geom: VoxelGeometry, source: Source, n_histories: int, threads: int = 256 * 1024,
             block: int = 128, n_batches: int = 32, seed: int = 1, prepared=None,
             tally_bytes: int = 64 * 2**20, estimator: str = "expected") -> MCResult:
    """CUDA backend (or the CUDA simulator when NUMBA_ENABLE_CUDASIM=1): one stream per thread.

    Thread ``t`` belongs to batch ``t % n_batches``. The tally on the GPU holds several copies of each batch
    row (as many as fit in ``tally_bytes``; thread ``t`` adds to row ``t % rows``, a row of batch
    ``t % n_batches`` since rows is a multiple of n_batches), and the copies are summed on the host. Fewer
    threads then add to the same float64 address: on the H100 this left the speed unchanged (contention was
    not the bottleneck) but cut the rounding of the sums (energy conservation error 3e-14 -> 1e-16)."""
    from numba import cuda
    from numba.cuda.random import create_xoroshiro128p_states

    from .kernels import cuda_kernel

    flag = _estimator_flag(estimator, geom)
    args, _ = prepared if prepared is not None else prepare(geom, source)
    threads = max(n_batches, min(threads, n_histories))
    threads = int(math.ceil(threads / n_batches)) * n_batches
    n_per = max(1, int(math.ceil(n_histories / threads)))
    row_bytes = (geom.n_bins + 4) * 8
    copies = int(max(1, min(threads // n_batches, tally_bytes // (row_bytes * n_batches))))
    states = create_xoroshiro128p_states(threads, seed=seed)
    dargs = [cuda.to_device(a) if isinstance(a, np.ndarray) else a for a in args]
    tally = cuda.to_device(np.zeros((copies * n_batches, geom.n_bins + 4)))
    kern = cuda_kernel()
    grid = (threads + block - 1) // block
    t = time.perf_counter()
    kern[grid, block](n_per, states, *dargs, flag, tally)
    cuda.synchronize()
    secs = time.perf_counter() - t
    host = tally.copy_to_host().reshape(copies, n_batches, geom.n_bins + 4).sum(axis=0)
    # each batch row collected threads/n_batches threads x n_per histories
    res = _summarise(host, n_per * threads // n_batches, secs, "cuda", geom.n_bins)
    res.histories = n_per * threads
    res.extra["simulator"] = bool(int(os.environ.get("NUMBA_ENABLE_CUDASIM", "0") or 0))
    res.extra["tally_copies"] = copies
    res.extra["estimator"] = estimator
    return res
