"""Series-to-volume operator: the chosen SDK series -> CT volume (HU float32, LPS affine, CT metadata).

Input ``study_selected_series_list`` (list of SDK ``StudySelectedSeries``; the first selected series of the
first study is converted, as the SDK's DICOMSeriesToVolumeOperator does). Outputs ``image`` (SDK ``Image``, LPS
affine, ``volume.to_sdk_image``: SDK writers accept it; the CTMetadata rides along as ``corpusct_meta``) and
``ct_volume`` (``CTVolume``). Both receivers are optional. The science is
``operators.common.dicom_series.series_to_volume``.
"""

from __future__ import annotations

import logging

from monai.deploy.core import ConditionType, Fragment, Operator, OperatorSpec

from operators.common.dicom_series import series_to_volume
from operators.common.errors import BadInputError
from operators.common.volume import CTVolume, to_sdk_image


class SeriesToVolumeOperator(Operator):
    def __init__(self, fragment: Fragment, *args, **kwargs):
        self.input_name = "study_selected_series_list"
        self.output_image = "image"
        self.output_volume = "ct_volume"
        self._log = logging.getLogger(f"{__name__}.{type(self).__name__}")
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec):
        spec.input(self.input_name)
        spec.output(self.output_image).condition(ConditionType.NONE)
        spec.output(self.output_volume).condition(ConditionType.NONE)

    def compute(self, op_input, op_output, context):
        vol, image = self.convert(op_input.receive(self.input_name))
        op_output.emit(image, self.output_image)
        op_output.emit(vol, self.output_volume)

    def convert(self, study_selected_series_list) -> tuple[CTVolume, object]:
        if not study_selected_series_list or not study_selected_series_list[0].selected_series:
            raise BadInputError("No CT series was selected for conversion.")
        selected = study_selected_series_list[0].selected_series[0]
        vol = series_to_volume(selected.series)
        image = to_sdk_image(vol)
        selected.image = image
        self._log.info("CT volume %s (z, y, x), spacing %s mm", vol.shape,
                       tuple(round(s, 3) for s in vol.spacing_mm))
        return vol, image
