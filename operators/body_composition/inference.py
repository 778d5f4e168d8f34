"""Body-composition network inference on a CTVolume: load the MONAI bundle (models/body_composition), resample
to the model grid (preprocess.py), sliding-window inference on 8-slice x 128 x 128 patches (the training patch,
so GroupNorm sees what it saw in training), then back to the CT grid: by default the native-resolution
refinement (refine.py: the network decides the region, the CT's HU the tissue, skin rim, marrow), or
``refine=False`` the plain up-sampled argmax. Pure torch / numpy.

    model = BodyCompositionModel.from_bundle("models/body_composition")
    labels, timing = model.predict(ct_volume)        # uint8 BODY_COMPOSITION ids on the CT grid
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from operators.common.bundle import bundle_name_version, load_torchscript_bundle
from operators.common.errors import ModelError
from operators.common.volume import CTVolume

from .preprocess import ModelGrid, pad_for_model
from .refine import refine_to_native

ROI = (8, 128, 128)
OVERLAP_Z = 0.25  # sliding-window overlap in z (in plane 0.25); see benchmarks/bench_body_composition.py


class BodyCompositionModel:
    def __init__(self, module, metadata: dict, path: Path):
        self.module, self.metadata, self.path = module, metadata, path

    @property
    def name_version(self) -> tuple[str, str]:
        return bundle_name_version(self.metadata, "body_composition")

    @classmethod
    def from_bundle(cls, bundle_dir: str | Path) -> BodyCompositionModel:
        module, metadata = load_torchscript_bundle(bundle_dir, "body-composition")
        return cls(module, metadata, Path(bundle_dir))

    def logits_model_grid(self, x: np.ndarray, overlap_z: float = OVERLAP_Z, sw_batch: int = 4) -> np.ndarray:
        """(Z, Y, X) HU on the model grid -> (8, Z, Y, X) logits."""
        from monai.inferers import sliding_window_inference

        xp, cut = pad_for_model(x, ROI[0], ROI[1])
        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(xp))[None, None]
            out = sliding_window_inference(t, ROI, sw_batch, self.module, overlap=(overlap_z, 0.25, 0.25),
                                           mode="gaussian", padding_mode="replicate")
        return out[0][(slice(None),) + cut].numpy()

    def predict(self, vol: CTVolume, refine: bool = True, overlap_z: float = OVERLAP_Z) -> tuple[np.ndarray, dict]:
        t0 = time.time()
        grid = ModelGrid.of(vol.shape, vol.affine_lps)
        x = grid.to_model(vol.hu)
        t1 = time.time()
        logits = self.logits_model_grid(x, overlap_z=overlap_z)
        t2 = time.time()
        labels = self.to_native(grid, logits, vol.hu, refine)
        t3 = time.time()
        if labels.shape != vol.shape:
            raise ModelError(f"body-composition output shape {labels.shape} != CT shape {vol.shape}")
        return labels, {"preprocess": round(t1 - t0, 2), "network": round(t2 - t1, 2),
                        "postprocess": round(t3 - t2, 2), "total": round(t3 - t0, 2)}

    @staticmethod
    def to_native(grid: ModelGrid, logits: np.ndarray, hu: np.ndarray, refine: bool = True) -> np.ndarray:
        """Model-grid logits -> uint8 labels on the CT grid: HU refinement (refine.py) or plain argmax."""
        return refine_to_native(grid, logits, hu) if refine else grid.logits_to_native(logits)
