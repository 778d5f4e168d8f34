"""Anchor post-process operator (thin; the rules are in rules.py).

    in:  ``segmentation`` ((CTVolume, OrganSegmentation) from OrganSegmentationOperator)
    out: ``segmentation`` (same pair, labels cleaned, ``postprocess_report`` set), ``ct_volume``, ``label_map``
    config: ``enabled`` {organ: bool} (default ``DEFAULT_ENABLED``), ``components`` (connected-component cleanup),
            ``anchors`` (the anchors trusted to bound other organs; default ``DEFAULT_ANCHORS``)
"""

from __future__ import annotations

import logging
from dataclasses import replace

from monai.deploy.core import ConditionType, Fragment, Operator, OperatorSpec

from operators.common.labels import ORGAN_BY_NAME

from .rules import DEFAULT_ANCHORS, DEFAULT_ENABLED, postprocess


def run_anchor_postprocess(vol, seg, enabled: dict | None = None, components: bool = True, anchors=None):
    """(vol, OrganSegmentation with cleaned labels and a report); organs that lose all voxels become
    "not found"."""
    labels, report = postprocess(seg.labels, vol.affine_lps, enabled=dict(DEFAULT_ENABLED, **(enabled or {})),
                                 components=components, anchors=DEFAULT_ANCHORS if anchors is None else anchors)
    status = dict(seg.status)
    for organ, st in status.items():
        if st == "segmented" and not (labels == ORGAN_BY_NAME[organ].id).any():
            status[organ] = "not found"
    summary = {o: {k: v for k, v in r.items() if k != "skipped_anchors" or v} for o, r in report.items()
               if o in status}
    return vol, replace(seg, labels=labels, status=status, postprocess_report=summary)


class AnchorPostprocessOperator(Operator):
    def __init__(self, fragment: Fragment, *args, enabled: dict | None = None, components: bool = True,
                 anchors=None, **kwargs):
        self.enabled, self.components, self.anchors = dict(enabled or {}), bool(components), anchors
        self._log = logging.getLogger(f"{__name__}.{type(self).__name__}")
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input("segmentation")
        for port in ("segmentation", "ct_volume", "label_map"):
            spec.output(port).condition(ConditionType.NONE)

    def compute(self, op_input, op_output, context):
        vol, seg = op_input.receive("segmentation")
        vol, seg = run_anchor_postprocess(vol, seg, self.enabled, self.components, self.anchors)
        removed = sum(r.get("rule_removed_voxels", 0) + r.get("components_removed_voxels", 0)
                      for r in seg.postprocess_report.values())
        self._log.info("Anchor post-process: %d voxels removed", removed)
        op_output.emit((vol, seg), "segmentation")
        op_output.emit(vol, "ct_volume")
        op_output.emit(seg.labels, "label_map")
