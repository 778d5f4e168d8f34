"""Series to CT volume. The pure part is ``operators.common.dicom_series.series_to_volume``; the operator is
``operators.series_to_volume.operator.SeriesToVolumeOperator``."""
