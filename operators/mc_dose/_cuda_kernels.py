"""CUDA build of the shared device functions (imported lazily by kernels.cuda_kernel)."""

from numba import config, cuda

from .kernels import build_device_functions


@cuda.jit(device=True)
def _cuda_deposit(tally, b, k, val):
    cuda.atomic.add(tally, (b, k), val)


_hist = build_device_functions(cuda.jit(device=True), _cuda_deposit)


# 64 registers per thread (the compiler's own choice is 118): more resident warps hide the latency of the
# random voxel and table loads. TG-195 case 5, 120 kVp, 3e8 histories on an H100 (2026-11-24), histories/s:
# 40 regs 0.88e8, 48 0.98e8, 56 1.07e8, 64 1.08e8, 72 0.91e8, 96 0.91e8, 118 (default) 0.89e8; results
# identical for a given seed. benchmarks/results/README.md has the runs.
# The CUDA simulator takes no register option.
@cuda.jit(**({} if config.ENABLE_CUDASIM else {"max_registers": 64}))
def kern(n_per_thread, states, src_pos, src_u, src_v, src_w, proj_cdf, fan_tan, cone_tan,
         bow_t, bow_mat, bow_rho, spec_lo, spec_w, spec_cdf, bg_mat, bg_rho, world,
         vox, tmap, shape, origin, spacing, cell_rho, cell_cls, cls_mu, cshape, csize,
         mu_tot, mu_ph, mu_co, sf, ff, fl_e, fl_cum, mu_en, bin_mat, bin_rho, expected, tally):
    tid = cuda.grid(1)
    if tid >= states.shape[0]:
        return
    nbins = tally.shape[1] - 4
    b = tid % tally.shape[0]
    for _h in range(n_per_thread):
        _hist(states, tid, b, src_pos, src_u, src_v, src_w, proj_cdf, fan_tan, cone_tan,
              bow_t, bow_mat, bow_rho, spec_lo, spec_w, spec_cdf, bg_mat, bg_rho, world,
              vox, tmap, shape, origin, spacing, cell_rho, cell_cls, cls_mu, cshape, csize,
              mu_tot, mu_ph, mu_co, sf, ff, fl_e, fl_cum, mu_en, bin_mat, bin_rho, expected, tally, nbins)
