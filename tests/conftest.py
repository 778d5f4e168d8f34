"""Shared fixtures. ``demo_study``: a small synthetic DICOM study of the procedural phantom (localizer, axial
series, coronal reformat) with its ground truth beside it, generated once per test session in a few seconds."""

from __future__ import annotations

import pytest

# Parameters of the session's small demo study: an abdomen scan (diaphragm to iliac crest) of an adult,
# coarse grid (128 x 128, ~4.5 mm pixels, 5 mm slices) so that generation and writing take a few seconds.
SMALL_DEMO = dict(seed=7, sex="F", age_years=52.0, bmi=27.0, region="abdomen", matrix=128, slice_thickness_mm=5.0)


@pytest.fixture(scope="session")
def demo_study(tmp_path_factory):
    """``models.phantoms.study.DemoStudy``: ``.dicom_dir`` (the study's DICOM files only), ``.labels_dir``
    (organs.nii.gz, body_composition.nii.gz, phantom.json), ``.json_path``, ``.series`` (number, UID, count
    per series: localizer, axial, coronal) and ``.phantom`` (the generated ``Phantom``)."""
    from models.phantoms import PhantomParams, generate_phantom, write_demo_study

    root = tmp_path_factory.mktemp("demo_study")
    ph = generate_phantom(PhantomParams(**SMALL_DEMO))
    return write_demo_study(ph, root)
