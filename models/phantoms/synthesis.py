"""From a tissue label volume to a CT image: HU, texture, partial-volume blur, kernel-correlated noise.

Steps (``/work/shared/notes/ct-realism.md``):

1. HU per tissue for the contrast phase (``tissues.TISSUES``), adjusted for age (bone mineral density,
   red/yellow marrow, thymus involution), with a per-patient jitter per tissue and a scanner offset.
2. Organ-internal texture: smooth random fields (correlation ~12 mm and ~3 mm) scaled per tissue
   (5-15 HU in parenchyma, more in bone and bowel content); lungs get the supine posterior density
   gradient.
3. Partial volume: Gaussian in-plane point spread (``psf_fwhm_mm``, combined with the pixel aperture) and
   along z a slice profile whose FWHM is the slice thickness (the labels are rendered on a z grid
   ``z_supersample`` times finer than the slice spacing and integrated with that profile at the slice
   centres).
4. Noise: white noise filtered in-plane by a kernel-like noise power spectrum (ramp x Gaussian
   apodisation, cut-off by kernel), scaled per slice with the water-equivalent diameter and the tube
   current so that large or low-dose slices are noisier.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from .params import KERNELS, PhantomParams
from .tissues import PHASES, TISSUES, T


def tissue_tables(params: PhantomParams, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(mean HU, texture SD) lookup tables indexed by tissue id, for this patient and contrast phase."""
    ph = PHASES.index(params.contrast)
    mean = np.zeros(256, np.float32)
    tex = np.zeros(256, np.float32)
    for t in TISSUES:
        mean[t.id] = t.hu[ph]
        tex[t.id] = t.texture_hu
    age = float(params.age_years)
    # bone mineral density: peaks ~30 y, falls with age; children less mineralised
    bmd = float(np.interp(age, [2, 10, 20, 30, 50, 70, 90], [0.72, 0.85, 0.97, 1.0, 0.92, 0.78, 0.68]))
    for name in ("cortical_bone", "femoral_head_cortical"):
        mean[T.__getattr__(name)] *= bmd
    for name in ("cancellous_bone", "femoral_head_cancellous"):
        mean[T.__getattr__(name)] = 260.0 * float(np.interp(age, [2, 20, 30, 50, 70, 90],
                                                             [0.85, 1.0, 1.0, 0.8, 0.55, 0.45]))
    # marrow: red (cellular, ~40 HU) in children, yellow (fatty) in adults
    mean[T.marrow] = float(np.interp(age, [2, 10, 25, 50, 80], [40, 20, -40, -60, -80]))
    # thymus: soft tissue in children, fat-replaced in adults
    mean[T.thymus] = float(np.interp(age, [2, 20, 40, 60], [40, 25, -40, -85]))
    # costal cartilage calcifies with age
    mean[T.cartilage] = float(np.interp(age, [2, 30, 60, 90], [110, 130, 200, 300]))
    # patient-to-patient spread (SD from ct-realism.md, conservative) and a scanner offset
    jitter = {T.lung: 35, T.subcutaneous_fat: 8, T.visceral_fat: 8, T.internal_fat: 8, T.muscle: 4, T.liver: 5,
              T.spleen: 4, T.cortical_bone: 60, T.cancellous_bone: 25, T.heart_blood_left: 4, T.aorta: 4}
    for tid, sd in jitter.items():
        mean[tid] += rng.normal(0, sd)
    offset = rng.normal(0, 3.0)
    body = np.ones(256, bool)
    body[[T.air, T.airway, T.sinus_air, T.stomach_gas, T.small_bowel_gas, T.colon_gas, T.esophagus_air]] = False
    mean[body] += offset
    return mean, tex


def _upsample_linear(a: np.ndarray, shape) -> np.ndarray:
    """Separable linear interpolation of ``a`` onto ``shape`` (corners aligned), float32, one axis at a time
    (much faster than ndimage.zoom for large outputs)."""
    out = a.astype(np.float32, copy=False)
    for ax in np.argsort([n / max(c, 1) for n, c in zip(shape, a.shape, strict=False)]):  # smallest expansion first
        n, c = int(shape[ax]), out.shape[ax]
        if n == c:
            continue
        pos = np.linspace(0.0, c - 1.0, n, dtype=np.float64) if c > 1 else np.zeros(n)
        i0 = np.clip(np.floor(pos).astype(np.intp), 0, max(c - 2, 0))
        w = (pos - i0).astype(np.float32)
        i1 = np.minimum(i0 + 1, c - 1)
        bshape = [1] * out.ndim
        bshape[ax] = n
        w = w.reshape(bshape)
        out = np.take(out, i0, axis=ax) * (1.0 - w) + np.take(out, i1, axis=ax) * w
    return out


def smooth_field(shape, spacing_zyx, sigma_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Unit-SD Gaussian random field with correlation length ~ sigma_mm, made on a coarse grid (about
    sigma/2 spacing, at least 1.5 voxels) and linearly interpolated to ``shape`` (fast for large volumes)."""
    shape = tuple(int(n) for n in shape)
    spacing = np.asarray(spacing_zyx, float)
    step = np.maximum(sigma_mm / 2.0 / spacing, 1.5)
    coarse = tuple(max(int(np.ceil(n / st)) + 1, 2) for n, st in zip(shape, step, strict=False))
    eff = np.array([(n - 1) / (c - 1) if n > 1 else 1.0 for n, c in zip(shape, coarse, strict=False)])
    w = rng.standard_normal(size=coarse, dtype=np.float32)
    w = ndimage.gaussian_filter(w, sigma_mm / (spacing * eff), mode="wrap")
    w /= max(float(w.std()), 1e-6)
    return _upsample_linear(w, shape)


def render_hu(lab: np.ndarray, spacing_zyx, y_coords: np.ndarray, params: PhantomParams,
              rng: np.random.Generator, nsub: int = 1) -> np.ndarray:
    """Noise-free HU with texture and partial-volume blur from a tissue volume (z, y, x).

    ``lab`` may be rendered on a z grid ``nsub`` (odd) times finer than the slices (``spacing_zyx[0]`` is
    then the fine spacing); the slice sensitivity profile (Gaussian, FWHM = slice thickness) is applied on
    that grid and the result returned at the slice centres (fine indices nsub//2, nsub//2 + nsub, ...).
    The smooth texture fields are drawn on the slice grid (their correlation lengths exceed a sub-slice)."""
    mean, tex = tissue_tables(params, rng)
    nzf, ny, nx = lab.shape
    nz = nzf // nsub
    h = nsub // 2
    dzf, dy, dx = (float(v) for v in spacing_zyx)
    sig_f = params.slice_thickness_mm / 2.355 / dzf
    J = int(np.ceil(3.0 * sig_f))
    taps = np.arange(-J, J + 1)
    w = np.exp(-0.5 * (taps / max(sig_f, 1e-6)) ** 2).astype(np.float32)
    w /= w.sum()
    lung_lut = np.zeros(256, np.float32)
    lung_lut[T.lung] = 1.0
    centres = np.arange(nz) * nsub + h
    hu = np.zeros((nz, ny, nx), np.float32)
    amp = np.zeros((nz, ny, nx), np.float32)
    lungf = np.zeros((nz, ny, nx), np.float32)
    for t, wt in zip(taps, w, strict=False):
        sub = lab[np.clip(centres + t, 0, nzf - 1)]
        hu += wt * mean[sub]
        amp += wt * tex[sub]
        lungf += wt * lung_lut[sub]
    dz_out = dzf * nsub
    f1 = smooth_field(hu.shape, (dz_out, dy, dx), 12.0, rng)
    f2 = smooth_field(hu.shape, (dz_out, dy, dx), 3.0, rng)
    hu += amp * (0.8 * f1 + 0.6 * f2)
    del f1, f2, amp
    # supine lungs: denser posteriorly (dependent atelectasis / blood volume gradient)
    if lungf.any():
        inl = lungf > 0.5
        ymed = float(np.median(np.broadcast_to(y_coords[None, :, None], hu.shape)[inl])) if inl.any() else 0.0
        hu += lungf * (0.35 * (y_coords[None, :, None].astype(np.float32) - ymed))
    del lungf
    # in-plane: scanner PSF combined with the pixel aperture (a 1-pixel box ~ Gaussian of SD 0.29 px)
    psf_sigma = params.psf_fwhm_mm / 2.355
    sy = np.hypot(psf_sigma, 0.29 * dy)
    sx = np.hypot(psf_sigma, 0.29 * dx)
    hu = ndimage.gaussian_filter(hu, (0.0, sy / dy, sx / dx), mode="nearest", truncate=3.0)
    return hu.astype(np.float32, copy=False)


def noise_filter(ny: int, nx: int, dy: float, dx: float, kernel: str) -> np.ndarray:
    """rfft2-domain amplitude filter giving a kernel-like noise power spectrum, normalised to unit SD."""
    fy = np.fft.fftfreq(ny, d=dy)[:, None]
    fx = np.fft.rfftfreq(nx, d=dx)[None, :]
    f = np.sqrt(fy ** 2 + fx ** 2)
    fc = KERNELS[kernel]
    amp = f * np.exp(-(f / fc) ** 2)
    # unit variance after irfft2 (account for the half spectrum)
    full = np.concatenate([amp, amp[:, 1:(nx - 1) // 2 + 1]], axis=1) if nx > 1 else amp
    norm = np.sqrt(np.mean(full ** 2))
    return (amp / max(norm, 1e-12)).astype(np.float32)


def add_noise(hu: np.ndarray, spacing_zyx, sigma_per_slice: np.ndarray, kernel: str,
              rng: np.random.Generator, chunk: int = 32) -> np.ndarray:
    """Add kernel-correlated noise with per-slice SD (in place, returns hu)."""
    nz, ny, nx = hu.shape
    h = noise_filter(ny, nx, float(spacing_zyx[1]), float(spacing_zyx[2]), kernel)
    for k0 in range(0, nz, chunk):
        k1 = min(k0 + chunk, nz)
        w = rng.standard_normal(size=(k1 - k0, ny, nx), dtype=np.float32)
        spec = sfft.rfft2(w, workers=-1)
        spec *= h[None]
        n = sfft.irfft2(spec, s=(ny, nx), workers=-1).astype(np.float32)
        hu[k0:k1] += n * np.asarray(sigma_per_slice[k0:k1], np.float32)[:, None, None]
    return hu


def noise_sigma_per_slice(dw_mm: np.ndarray, ma: np.ndarray, params: PhantomParams,
                          reference_ma: float) -> np.ndarray:
    """Noise SD per slice: reference noise at Dw 300 mm and the reference mA, growing with attenuation
    (exp(mu_w Dw / 2), mu_w ~ 0.019 /mm) and with 1/sqrt(mA); thinner slices are noisier."""
    base = params.noise_hu if params.noise_hu is not None else 12.0 * np.sqrt(5.0 / params.slice_thickness_mm)
    dw = np.maximum(np.asarray(dw_mm, float), 50.0)
    sig = base * np.exp(0.5 * 0.019 * (dw - 300.0)) * np.sqrt(reference_ma / np.maximum(ma, 1.0))
    return np.clip(sig, 0.25 * base, 4.0 * base).astype(np.float32)
