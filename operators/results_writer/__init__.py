"""Writes an app's JSON results and PNG previews into its output folder (DICOM writers: operators/dicom_output)."""
