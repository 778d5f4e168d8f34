"""Monte Carlo CT dose engine: photon transport in numba, one physics source for CPU and CUDA.

physics: xraylib cross-section / sampling tables, NIST-consistent energy absorption, MC-GPU reader.
kernels: device functions (delta tracking with macro-cell majorants, transport in the air around the
         grid, photo + K fluorescence, Compton KN x S, Rayleigh F^2),
         compiled by numba.njit (parallel CPU backend) and numba.cuda.jit (CUDA backend).
engine:  VoxelGeometry, Source (fan/cone point sources, trajectories, bowtie, mA weights), run_cpu/run_cuda.
sources: spekpy spectrum from kVp, generic bowtie, axial/helical CT trajectories with per-slice mA,
         HU -> ICRP-110 material/density mapping.
calibration: simulated CTDI100/CTDIw in 16/32 cm PMMA, photons per mAs.
dose:    patient_dose(CTVolume, masks) -> block dose grid (soft tissue) and organ doses (mGy, 1 sigma)
         from the organ's own voxels of its own tissue kind (bone kept out of soft organs).
(SSDE and water-equivalent diameter, AAPM 204/220: operators/common/dosimetry.py)
operator: MCDoseOperator (MONAI Deploy), imported on demand (needs the SDK).
tg195:   AAPM TG-195 case 4 and 5 set-ups and reference values.
"""

from .engine import MCResult, Source, VoxelGeometry, fan_source, prepare, run_cpu, run_cuda  # noqa: F401
from .physics import AIR, PMMA, WATER, Material, build_tables  # noqa: F401
