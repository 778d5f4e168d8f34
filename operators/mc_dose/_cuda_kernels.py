"""CUDA build of the shared device functions (imported lazily by kernels.cuda_kernel)."""

from numba import cuda

from .kernels import build_device_functions


@cuda.jit(device=True)
def _cuda_deposit(tally, b, k, val):
    cuda.atomic.add(tally, (b, k), val)


_hist = build_device_functions(cuda.jit(device=True), _cuda_deposit)


@cuda.jit
def kern(n_per_thread, states, src_pos, src_u, src_v, src_w, proj_cdf, fan_tan, cone_tan,
         bow_t, bow_mat, bow_rho, spec_lo, spec_w, spec_cdf, bg_mat, bg_rho, world,
         vox, tmap, shape, origin, spacing, cell_rho, cell_cls, cls_mu, cshape, csize,
         mu_tot, mu_ph, mu_co, sf, ff, fl_e, fl_cum, tally):
    tid = cuda.grid(1)
    if tid >= states.shape[0]:
        return
    nbins = tally.shape[1] - 4
    b = tid % tally.shape[0]
    for _h in range(n_per_thread):
        _hist(states, tid, b, src_pos, src_u, src_v, src_w, proj_cdf, fan_tan, cone_tan,
              bow_t, bow_mat, bow_rho, spec_lo, spec_w, spec_cdf, bg_mat, bg_rho, world,
              vox, tmap, shape, origin, spacing, cell_rho, cell_cls, cls_mu, cshape, csize,
              mu_tot, mu_ph, mu_co, sf, ff, fl_e, fl_cum, tally, nbins)
