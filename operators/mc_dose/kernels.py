"""Photon transport written once, compiled for the CPU (parallel njit) and for CUDA (numba.cuda).

:func:`build_device_functions` takes a device-function decorator and a ``deposit`` function and
returns the history function; the CPU backend builds it with ``numba.njit`` and a plain add, the
CUDA backend with ``numba.cuda.jit(device=True)`` and ``cuda.atomic.add``. The random numbers come
from ``numba.cuda.random``'s xoroshiro128+ functions, which are generic ``@jit`` functions usable by
both targets (one state per CPU batch / per CUDA thread).

Geometry: the voxel grid (one uint32 word per voxel: material index and density, see RHO_BITS) sits in
a world box filled with a background medium (or vacuum). Outside the grid photons are transported
analogue in the medium; inside, delta (Woodcock) tracking with a majorant per macro cell (about 1.5 cm)
and energy bin, so that soft-tissue and lung cells are not tracked with the majorant of bone.

Tally layout: ``tally[batch, bin]`` float64 (keV). Bins 0..n-1 are the scoring regions given by the
int32 ``tally_map`` per voxel (-1: unscored); then four bookkeeping bins: ESCAPED (energy carried
out of the world, or out of the grid in vacuum, including photons that miss it), EMITTED (energy of
the source photons after the bowtie weighting), UNSCORED (deposited in voxels with tally_map -1 and in
the background medium), PRIMARY (part of ESCAPED carried by photons that never interacted:
narrow-beam transmission).

Two estimators of the energy deposited in the grid (``expected``): analog (0) deposits at each real
interaction what it gives locally (photoelectron minus fluorescence, Compton electron, photons below ECUT);
energy is then conserved history by history: sum(scored) + UNSCORED + ESCAPED == EMITTED. Expected-value
kerma (1, the default of engine.run_cpu / run_cuda) scores E mu_en rho / majorant at every tentative
collision of the delta tracking, real or virtual, plus the photons below ECUT where they stop: the same
expectation (the track-length kerma estimator), with far less variance in small or thin regions (a lens is
crossed by many photons, few of which interact in it); energy is conserved on average only. The background
medium outside the grid is always scored analog. With the expected-value estimator a bin may score the kerma of
another medium than its voxels' (``bin_mat`` / ``bin_rho`` per bin, -1: the voxel's own; engine.VoxelGeometry
``score_material``), e.g. soft tissue in voxels that the HU made bone-like; transport is the same.
"""

from __future__ import annotations

import math

from numba import njit, prange
from numba.cuda.random import xoroshiro128p_uniform_float64 as _rand

E0_KEV = 1.0
DE_KEV = 0.1
EMAX_KEV = 150.0
N_E = int(round((EMAX_KEV - E0_KEV) / DE_KEV)) + 1
ECUT_KEV = 5.0  # photons below this deposit locally
HC_KEV_A = 12.398419843320026  # keV * Angstrom
N_SF = 1400  # S(x) table, uniform in x on [0, XMAX]
N_FF = 1024  # F^2 cumulative table, x = XMAX * t^2, t uniform on [0, 1]
XMAX = EMAX_KEV / HC_KEV_A * 1.001
N_FL = 6  # fluorescence channels per material (3 elements x K-alpha/K-beta)
# voxel word (uint32): material index in the top 8 bits, density in units of RHO_UNIT in the low 24 bits
# (resolution 9.5e-7 g/cm^3, at most 16 g/cm^3): one memory load per tracking step instead of two
RHO_BITS = 24
RHO_UNIT = 2.0**-20
RHO_MASK = (1 << RHO_BITS) - 1

E0 = E0_KEV
INV_DE = 1.0 / DE_KEV
ECUT = ECUT_KEV
HC = HC_KEV_A
TWO_PI = 2.0 * math.pi
MEC2 = 510.99895


def build_device_functions(dev, deposit):
    """Return the history function compiled with decorator ``dev`` (one physics source)."""

    @dev
    def urand(states, sidx):
        # (0, 1]: safe for -log(u)
        return 1.0 - _rand(states, sidx)

    @dev
    def e_index(e):
        t = (e - E0) * INV_DE
        i = int(t)
        if i < 0:
            i = 0
        if i > N_E - 2:
            i = N_E - 2
        return i, t - i

    @dev
    def lerp(tab, m, i, f):
        return tab[m, i] + f * (tab[m, i + 1] - tab[m, i])

    @dev
    def lerp2(tab, m, i, f, k):
        return tab[m, i, k] + f * (tab[m, i + 1, k] - tab[m, i, k])

    @dev
    def rotate(ux, uy, uz, cost, phi):
        sint = math.sqrt(max(0.0, 1.0 - cost * cost))
        cp = math.cos(phi)
        sp = math.sin(phi)
        if abs(uz) > 0.99999:
            sg = 1.0 if uz > 0 else -1.0
            return sint * cp, sint * sp, sg * cost
        tmp = math.sqrt(1.0 - uz * uz)
        nx = sint * (ux * uz * cp - uy * sp) / tmp + ux * cost
        ny = sint * (uy * uz * cp + ux * sp) / tmp + uy * cost
        nz = -sint * cp * tmp + uz * cost
        n = math.sqrt(nx * nx + ny * ny + nz * nz)
        return nx / n, ny / n, nz / n

    @dev
    def iso_dir(states, sidx):
        cost = 2.0 * _rand(states, sidx) - 1.0
        phi = TWO_PI * _rand(states, sidx)
        sint = math.sqrt(max(0.0, 1.0 - cost * cost))
        return sint * math.cos(phi), sint * math.sin(phi), cost

    @dev
    def sample_compton(states, sidx, e, sf, m):
        """Klein-Nishina (Kahn/Butcher-Messel as in Geant4) with S(x)/Z rejection -> (E', cos)."""
        k = e / MEC2
        eps0 = 1.0 / (1.0 + 2.0 * k)
        eps0sq = eps0 * eps0
        a1 = -math.log(eps0)
        a2 = a1 + 0.5 * (1.0 - eps0sq)
        while True:
            if a1 > a2 * _rand(states, sidx):
                eps = math.exp(-a1 * _rand(states, sidx))
                epssq = eps * eps
            else:
                epssq = eps0sq + (1.0 - eps0sq) * _rand(states, sidx)
                eps = math.sqrt(epssq)
            onecost = (1.0 - eps) / (eps * k)
            sint2 = onecost * (2.0 - onecost)
            g = 1.0 - eps * sint2 / (1.0 + epssq)
            x = e / HC * math.sqrt(0.5 * onecost)
            t = x / XMAX * (N_SF - 1)
            j = int(t)
            if j > N_SF - 2:
                j = N_SF - 2
            s = sf[m, j] + (t - j) * (sf[m, j + 1] - sf[m, j])
            if _rand(states, sidx) * 1.0000001 < g * s:
                return eps * e, 1.0 - onecost

    @dev
    def sample_rayleigh(states, sidx, e, ff, m):
        """x^2 from the cumulative F^2 table, Thomson (1+cos^2)/2 rejection -> cos(theta)."""
        xm = e / HC
        tm = math.sqrt(xm / XMAX) * (N_FF - 1)
        jm = int(tm)
        if jm > N_FF - 2:
            jm = N_FF - 2
        amax = ff[m, jm] + (tm - jm) * (ff[m, jm + 1] - ff[m, jm])
        while True:
            a = _rand(states, sidx) * amax
            lo = 0
            hi = jm + 1
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if ff[m, mid] <= a:
                    lo = mid
                else:
                    hi = mid
            xl = XMAX * (lo / (N_FF - 1.0)) ** 2
            xh = XMAX * ((lo + 1) / (N_FF - 1.0)) ** 2
            d = ff[m, lo + 1] - ff[m, lo]
            f = (a - ff[m, lo]) / d if d > 0 else 0.0
            x2 = xl * xl + f * (xh * xh - xl * xl)
            cost = 1.0 - 2.0 * x2 / (xm * xm)
            if cost < -1.0:
                cost = -1.0
            if 2.0 * _rand(states, sidx) <= 1.0 + cost * cost:
                return cost

    @dev
    def box_entry(px, py, pz, ux, uy, uz, lo_x, lo_y, lo_z, hi_x, hi_y, hi_z):
        """distance to enter the box [lo, hi] along u (0 if inside); -1 when the ray misses."""
        tmin = 0.0
        tmax = 1e30
        for ax in range(3):
            if ax == 0:
                p, u, lo, hi = px, ux, lo_x, hi_x
            elif ax == 1:
                p, u, lo, hi = py, uy, lo_y, hi_y
            else:
                p, u, lo, hi = pz, uz, lo_z, hi_z
            if abs(u) < 1e-12:
                if p < lo or p > hi:
                    return -1.0
            else:
                t1 = (lo - p) / u
                t2 = (hi - p) / u
                if t1 > t2:
                    t1, t2 = t2, t1
                if t1 > tmin:
                    tmin = t1
                if t2 < tmax:
                    tmax = t2
        if tmax <= tmin:
            return -1.0
        return tmin

    @dev
    def box_exit(px, py, pz, ux, uy, uz, lo_x, lo_y, lo_z, hi_x, hi_y, hi_z):
        """distance along u to leave the box [lo, hi] from a point inside it (>= 0)."""
        t = 1e30
        if ux > 0.0:
            t = min(t, (hi_x - px) / ux)
        elif ux < 0.0:
            t = min(t, (lo_x - px) / ux)
        if uy > 0.0:
            t = min(t, (hi_y - py) / uy)
        elif uy < 0.0:
            t = min(t, (lo_y - py) / uy)
        if uz > 0.0:
            t = min(t, (hi_z - pz) / uz)
        elif uz < 0.0:
            t = min(t, (lo_z - pz) / uz)
        return max(t, 0.0)

    @dev
    def cell_exit(p, u, lo, c, csz, n, d):
        """Path length along one axis (coordinate ``p``, direction cosine ``u``) to the far face of macro-cell
        ``c`` (``csz`` voxels of size ``d`` per cell; the grid has ``n`` voxels from ``lo``)."""
        if u > 0.0:
            return (lo + min((c + 1) * csz, n) * d - p) / u
        if u < 0.0:
            return (lo + c * csz * d - p) / u
        return 1e30

    @dev
    def interact(states, sidx, e, ux, uy, uz, m, ie, fe, r, mu_ph, mu_co, sf, ff, fl_e, fl_cum):
        """one real interaction in material m; ``r`` uniform on [0, mu_total/rho) selects the process.
        Returns (keV the interaction deposits, keV of a photon that stops here (scattered below ECUT),
        new energy (0: absorbed or stopped), ux, uy, uz)."""
        ph_ = lerp(mu_ph, m, ie, fe)
        if r <= ph_:
            # photoabsorption, K fluorescence for Z >= 20
            uf = _rand(states, sidx)
            ch = -1
            for k in range(N_FL):
                if uf < lerp2(fl_cum, m, ie, fe, k):
                    ch = k
                    break
            if ch < 0:
                return e, 0.0, 0.0, ux, uy, uz
            ef = fl_e[m, ch]  # fluorescence lines below ECUT are not channels: ef >= ECUT
            nx_, ny_, nz_ = iso_dir(states, sidx)
            return e - ef, 0.0, ef, nx_, ny_, nz_
        dep = 0.0
        if r <= ph_ + lerp(mu_co, m, ie, fe):
            e2, cost = sample_compton(states, sidx, e, sf, m)
            dep = e - e2
            e = e2
        else:
            cost = sample_rayleigh(states, sidx, e, ff, m)
        ux, uy, uz = rotate(ux, uy, uz, cost, TWO_PI * _rand(states, sidx))
        if e < ECUT:
            return dep, e, 0.0, ux, uy, uz
        return dep, 0.0, e, ux, uy, uz

    @dev
    def history(states, sidx, b,
                src_pos, src_u, src_v, src_w, proj_cdf, fan_tan, cone_tan,
                bow_t, bow_mat, bow_rho, spec_lo, spec_w, spec_cdf, bg_mat, bg_rho, world,
                vox, tmap, shape, origin, spacing, cell_rho, cell_cls, cls_mu, cshape, csize,
                mu_tot, mu_ph, mu_co, sf, ff, fl_e, fl_cum, mu_en, bin_mat, bin_rho, expected, tally, nbins):
        nz = shape[0]
        ny = shape[1]
        nx = shape[2]
        # --- source: projection, energy, direction (isotropic point source collimated to a rectangle)
        u = _rand(states, sidx)
        lo = 0
        hi = proj_cdf.shape[0] - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if proj_cdf[mid] < u:
                lo = mid + 1
            else:
                hi = mid
        p = lo
        u = _rand(states, sidx)
        lo = 0
        hi = spec_cdf.shape[0] - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if spec_cdf[mid] < u:
                lo = mid + 1
            else:
                hi = mid
        e = spec_lo[lo] + spec_w[lo] * _rand(states, sidx)
        while True:
            a = (2.0 * _rand(states, sidx) - 1.0) * fan_tan
            c = (2.0 * _rand(states, sidx) - 1.0) * cone_tan
            nrm = math.sqrt(1.0 + a * a + c * c)
            if _rand(states, sidx) * nrm * nrm * nrm <= 1.0:
                break
        ux = (src_u[p, 0] + a * src_v[p, 0] + c * src_w[p, 0]) / nrm
        uy = (src_u[p, 1] + a * src_v[p, 1] + c * src_w[p, 1]) / nrm
        uz = (src_u[p, 2] + a * src_v[p, 2] + c * src_w[p, 2]) / nrm
        px = src_pos[p, 0]
        py = src_pos[p, 1]
        pz = src_pos[p, 2]
        ie, fe = e_index(e)
        w = 1.0
        if bow_mat >= 0:
            nb = bow_t.shape[0]
            tb = (a / fan_tan + 1.0) * 0.5 * (nb - 1) if fan_tan > 0 else 0.0
            jb = int(tb)
            if jb > nb - 2:
                jb = nb - 2
            if jb < 0:
                jb = 0
            thick = bow_t[jb] + (tb - jb) * (bow_t[jb + 1] - bow_t[jb])
            w *= math.exp(-lerp(mu_tot, bow_mat, ie, fe) * bow_rho * thick * nrm)
        deposit(tally, b, nbins + 1, w * e)
        glo_x = origin[2]
        glo_y = origin[1]
        glo_z = origin[0]
        ghi_x = origin[2] + nx * spacing[2]
        ghi_y = origin[1] + ny * spacing[1]
        ghi_z = origin[0] + nz * spacing[0]
        inv_dx = 1.0 / spacing[2]
        inv_dy = 1.0 / spacing[1]
        inv_dz = 1.0 / spacing[0]
        primary = True
        if bg_mat >= 0:
            # the world box (filled with the background medium) must hold the focal spot; else enter it
            t0 = box_entry(px, py, pz, ux, uy, uz, world[0], world[1], world[2], world[3], world[4], world[5])
            if t0 < 0.0:
                deposit(tally, b, nbins, w * e)
                deposit(tally, b, nbins + 3, w * e)
                return
            px += ux * t0
            py += uy * t0
            pz += uz * t0
        inside = False
        tau = -1.0
        dc = -1.0
        mj = 0.0
        while True:
            if not inside:
                # --- outside the voxel grid: vacuum (straight to the grid) or the background medium of
                # the world box, transported analogue (free path, Compton / Rayleigh / photo in the medium)
                tin = box_entry(px, py, pz, ux, uy, uz, glo_x, glo_y, glo_z, ghi_x, ghi_y, ghi_z)
                if bg_mat < 0:
                    if tin < 0.0:
                        deposit(tally, b, nbins, w * e)
                        if primary:
                            deposit(tally, b, nbins + 3, w * e)
                        return
                    step = tin
                else:
                    ie, fe = e_index(e)
                    mbg = lerp(mu_tot, bg_mat, ie, fe) * bg_rho
                    step = -math.log(urand(states, sidx)) / mbg
                    if tin < 0.0 or step < tin:
                        tout = box_exit(px, py, pz, ux, uy, uz, world[0], world[1], world[2],
                                        world[3], world[4], world[5])
                        if step >= tout:
                            deposit(tally, b, nbins, w * e)
                            if primary:
                                deposit(tally, b, nbins + 3, w * e)
                            return
                        px += ux * step
                        py += uy * step
                        pz += uz * step
                        dep, stop, e, ux, uy, uz = interact(states, sidx, e, ux, uy, uz, bg_mat, ie, fe,
                                                            urand(states, sidx) * mbg / bg_rho,
                                                            mu_ph, mu_co, sf, ff, fl_e, fl_cum)
                        deposit(tally, b, nbins + 2, w * (dep + stop))
                        primary = False
                        if e <= 0.0:
                            return
                        continue
                    step = tin
                # nudge inside the grid
                px += ux * (step + 1e-7)
                py += uy * (step + 1e-7)
                pz += uz * (step + 1e-7)
                inside = True
            # --- delta (Woodcock) tracking with a majorant per macro cell and energy bin (a strict bound:
            # the cell's largest density x the largest mass attenuation of the materials it holds). The
            # optical depth ``tau`` left to the next (real or virtual) collision carries over cell borders;
            # ``dc`` is the distance left to the current cell's exit (< 0: find the cell again).
            if dc < 0.0:
                fx = (px - glo_x) * inv_dx
                fy = (py - glo_y) * inv_dy
                fz = (pz - glo_z) * inv_dz
                if fx < 0.0 or fy < 0.0 or fz < 0.0 or fx >= nx or fy >= ny or fz >= nz:
                    inside = False  # left the grid (at a cell border): continue outside
                    tau = -1.0
                    continue
                ie, fe = e_index(e)
                cxi = int(fx) // csize[2]
                cyi = int(fy) // csize[1]
                czi = int(fz) // csize[0]
                c = (czi * cshape[1] + cyi) * cshape[2] + cxi
                mj = cell_rho[c] * cls_mu[cell_cls[c], ie]
                dxc = cell_exit(px, ux, glo_x, cxi, csize[2], nx, spacing[2])
                dyc = cell_exit(py, uy, glo_y, cyi, csize[1], ny, spacing[1])
                dzc = cell_exit(pz, uz, glo_z, czi, csize[0], nz, spacing[0])
                dc = max(min(dxc, min(dyc, dzc)), 0.0)
            if tau < 0.0:
                tau = -math.log(urand(states, sidx))
            if tau >= mj * dc:
                tau -= mj * dc  # no collision in this cell: on to the next one
                px += ux * (dc + 1e-7)
                py += uy * (dc + 1e-7)
                pz += uz * (dc + 1e-7)
                dc = -1.0
                continue
            step = tau / mj
            tau = -1.0
            dc -= step
            px += ux * step
            py += uy * step
            pz += uz * step
            ix = min(max(int((px - glo_x) * inv_dx), 0), nx - 1)
            iy = min(max(int((py - glo_y) * inv_dy), 0), ny - 1)
            iz = min(max(int((pz - glo_z) * inv_dz), 0), nz - 1)
            v = (iz * ny + iy) * nx + ix
            q = vox[v]
            m = q >> RHO_BITS
            rho = (q & RHO_MASK) * RHO_UNIT
            bin_ = tmap[v]
            if bin_ < 0:
                bin_ = nbins + 2
            if expected:
                # expected-value kerma: every tentative (real or virtual) collision scores what a real one
                # deposits on average, E mu_en / mu, times the chance mu / majorant that it is real. Tentative
                # collisions come at rate ``mj`` per cm, so the score per cm is E mu_en: the track-length
                # kerma estimator, without a voxel walk. Real collisions then deposit only the energy of
                # photons that stop (below ECUT).
                # A bin with a scoring medium (bin_mat >= 0: VoxelGeometry.score_material) scores the kerma of
                # that medium at its density instead of the voxel's own: the dose to a soft-tissue organ in
                # voxels the HU made bone-like (partial volume), in the fluence there. Transport is unchanged.
                sm = bin_mat[bin_]
                if sm >= 0:
                    deposit(tally, b, bin_, w * e * lerp(mu_en, sm, ie, fe) * bin_rho[bin_] / mj)
                else:
                    deposit(tally, b, bin_, w * e * lerp(mu_en, m, ie, fe) * rho / mj)
            mt = lerp(mu_tot, m, ie, fe) * rho
            r = urand(states, sidx) * mj
            if r > mt:
                continue  # virtual collision (same cell, energy and direction)
            dc = -1.0
            dep, stop, e, ux, uy, uz = interact(states, sidx, e, ux, uy, uz, m, ie, fe, r / rho,
                                                mu_ph, mu_co, sf, ff, fl_e, fl_cum)
            if not expected:
                deposit(tally, b, bin_, w * (dep + stop))
            elif stop > 0.0:
                deposit(tally, b, bin_, w * stop)
            primary = False
            if e <= 0.0:
                return

    return history


@njit(cache=True)
def _cpu_deposit(tally, b, k, val):
    tally[b, k] += val


_cpu_history = build_device_functions(njit(cache=False, inline="never"), _cpu_deposit)


@njit(parallel=True, cache=True)
def cpu_run(n_per_batch, states, src_pos, src_u, src_v, src_w, proj_cdf, fan_tan, cone_tan,
            bow_t, bow_mat, bow_rho, spec_lo, spec_w, spec_cdf, bg_mat, bg_rho, world,
            vox, tmap, shape, origin, spacing, cell_rho, cell_cls, cls_mu, cshape, csize,
            mu_tot, mu_ph, mu_co, sf, ff, fl_e, fl_cum, mu_en, bin_mat, bin_rho, expected, tally):
    nbatch = tally.shape[0]
    nbins = tally.shape[1] - 4
    for b in prange(nbatch):
        for _h in range(n_per_batch):
            _cpu_history(states, b, b, src_pos, src_u, src_v, src_w, proj_cdf, fan_tan, cone_tan,
                         bow_t, bow_mat, bow_rho, spec_lo, spec_w, spec_cdf, bg_mat, bg_rho, world,
                         vox, tmap, shape, origin, spacing, cell_rho, cell_cls, cls_mu, cshape, csize,
                         mu_tot, mu_ph, mu_co, sf, ff, fl_e, fl_cum, mu_en, bin_mat, bin_rho, expected, tally, nbins)


def cuda_kernel():
    """The CUDA kernel (lazy: importing numba.cuda kernels needs a GPU or NUMBA_ENABLE_CUDASIM=1)."""
    from ._cuda_kernels import kern

    return kern
