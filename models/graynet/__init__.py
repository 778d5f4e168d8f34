"""GrayNet: per-slice body parts, sex, age and weight from axial CT (MONAI bundle in this folder)."""
