"""CT series selector: SDK JSON rules, content checks, ranking, report format, operator ports and graph."""

import json

import pytest
from _ct_fixtures import make_volume, study_info, write_series

from models.phantoms.dicom_export import IMAGE_TYPE_LOCALIZER, IMAGE_TYPE_REFORMAT
from operators.common.dicom_files import scan_folder
from operators.series_selector import (
    QCConfig,
    RuleOutcome,
    SelectionConfig,
    SeriesInput,
    check_series,
    classify_kernel,
    default_rules_path,
    load_rules,
    select_ct_series,
)


def _inputs(folder, matched="rule"):
    out = []
    for study_uid, series in scan_folder(folder).grouped().items():
        for uid, ds in series.items():
            out.append(SeriesInput(study_uid, uid, ds, RuleOutcome(matched_rule=matched)))
    return out


def _by_number(report):
    return {s.series_number: s for s in report.series}


# --- kernels ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kernel, manufacturer, cls", [
    ("B30f", "SIEMENS", "soft"), ("B40f", "SIEMENS", "soft"), ("B45f", "SIEMENS", "soft"),
    ("B60f", "SIEMENS", "sharp"), ("B70f", "SIEMENS", "sharp"), ("B80f", "SIEMENS", "sharp"),
    ("Br36d", "SIEMENS", "soft"), ("Br40d", "SIEMENS", "soft"), ("Br64d", "SIEMENS", "sharp"),
    ("Bl57d", "SIEMENS", "sharp"), ("I31f", "SIEMENS", "soft"), (["Br40d", "3"], "SIEMENS", "soft"),
    ("STANDARD", "GE MEDICAL SYSTEMS", "soft"), ("SOFT", "GE MEDICAL SYSTEMS", "soft"),
    ("LUNG", "GE MEDICAL SYSTEMS", "sharp"), ("BONE", "GE MEDICAL SYSTEMS", "sharp"),
    ("BONEPLUS", "GE MEDICAL SYSTEMS", "sharp"), ("EDGE", "GE MEDICAL SYSTEMS", "sharp"),
    ("DETAIL", "GE MEDICAL SYSTEMS", "medium"),
    ("B", "Philips", "soft"), ("C", "Philips", "soft"), ("L", "Philips", "sharp"), ("YB", "Philips", "sharp"),
    ("FC01", "TOSHIBA", "soft"), ("FC13", "TOSHIBA", "soft"), ("FC18", "CANON", "soft"),
    ("FC52", "TOSHIBA", "sharp"), ("FC86", "CANON", "sharp"), ("FC30", "TOSHIBA", "medium"),
    ("BODY SHARP", "", "sharp"), ("", "", "unknown"), ("XYZ", "", "unknown"),
])
def test_kernel_classes(kernel, manufacturer, cls):
    assert classify_kernel(kernel, manufacturer)[0] == cls


# --- rules --------------------------------------------------------------------------------------------

def test_rules_load_from_default_path_string_and_dict(tmp_path):
    default = load_rules()
    assert default == json.loads(default_rules_path().read_text())
    cond = default["selections"][0]["conditions"]
    assert cond["Modality"] and {"ORIGINAL", "PRIMARY", "AXIAL", "!LOCALIZER"} <= set(cond["ImageType"])
    p = tmp_path / "r.json"
    p.write_text(json.dumps(default))
    assert load_rules(p) == load_rules(str(p)) == load_rules(json.dumps(default)) == load_rules(default)
    assert load_rules("ct_default") == default


@pytest.mark.parametrize("bad", [{}, {"selections": []}, {"selections": [{"name": "x"}]},
                                 {"selections": [{"name": "x", "conditions": {"GantryDetectorTilt": 0}}]}])
def test_invalid_rules_refused(bad):
    with pytest.raises(ValueError):
        load_rules(bad)


# --- content checks and ranking (pure) ----------------------------------------------------------------

def test_clean_series_passes_checks(tmp_path):
    write_series(tmp_path, make_volume())
    reasons, facts = check_series(scan_folder(tmp_path).datasets, QCConfig())
    assert reasons == []
    assert facts.slice_spacing_mm == pytest.approx(5.0) and facts.z_coverage_mm == pytest.approx(55.0)
    assert facts.pixel_spacing_mm == pytest.approx((0.8, 0.9)) and facts.normal_angle_deg == pytest.approx(0)


def test_soft_kernel_preferred_over_sharp_for_same_acquisition(tmp_path):
    st = study_info()
    write_series(tmp_path, make_volume(kernel="B70f"), 3, "LUNG B70f", study=st)
    write_series(tmp_path, make_volume(kernel="B30f"), 4, "SOFT B30f", study=st)
    rep = select_ct_series(_inputs(tmp_path))
    s = _by_number(rep)
    assert s[4].status == "chosen" and s[3].status == "candidate"
    assert s[3].score["kernel_class"] == "sharp" and s[4].score["kernel"] > s[3].score["kernel"]
    assert "B70f" in s[3].reasons[0] and s[4].reasons[0].startswith("chosen:")


def test_thickness_in_range_preferred_and_coverage_counts(tmp_path):
    st = study_info()
    write_series(tmp_path, make_volume(nz=12, dz=5.0), 2, "5 mm", study=st)
    write_series(tmp_path, make_volume(nz=6, dz=10.0, thickness=10.0), 3, "10 mm", study=st)  # 50 mm
    write_series(tmp_path, make_volume(nz=12, dz=2.0), 5, "2 mm short", study=st)  # 22 mm coverage only
    s = _by_number(select_ct_series(_inputs(tmp_path), SelectionConfig(qc=QCConfig(min_slices=5))))
    assert s[3].score["thickness"] == pytest.approx(0.5) and s[2].score["thickness"] == 1.0
    assert s[5].score["coverage"] < s[3].score["coverage"] < s[2].score["coverage"] == 1.0
    assert s[2].status == "chosen"


def test_rule_failure_is_reported(tmp_path):
    write_series(tmp_path, make_volume())
    inp = _inputs(tmp_path, matched=None)
    inp[0].rule.failures = ["does not match rule 'x': Modality 'CT' does not match '^MR$'"]
    from operators.common.errors import BadInputError
    with pytest.raises(BadInputError, match="Modality 'CT' does not match"):
        select_ct_series(inp)


# --- operator: SDK rule matching, ports, report --------------------------------------------------------

@pytest.fixture(scope="module")
def mixed_study(tmp_path_factory):
    """Axial soft + axial sharp + scout + coronal reformat, one study."""
    d = tmp_path_factory.mktemp("mixed")
    st = study_info(seed=5)
    write_series(d, make_volume(kernel="B31f"), 2, "Abdomen 5.0 B31f", study=st)
    write_series(d, make_volume(kernel="B70f"), 3, "Lung 5.0 B70f", study=st)
    scout = make_volume(nz=1, ny=40, nx=32, orientation=[1, 0, 0, 0, 0, -1], dz=1.0)
    write_series(d, scout, 1, "Topogram", study=st, image_type=IMAGE_TYPE_LOCALIZER)
    cor = make_volume(nz=12, ny=20, nx=32, orientation=[1, 0, 0, 0, 0, -1], dz=2.0)
    write_series(d, cor, 4, "COR MPR", study=st, image_type=IMAGE_TYPE_REFORMAT)
    return d


def test_operator_selects_with_sdk_rules_and_emits_sdk_types(mixed_study):
    from monai.deploy.core import Fragment
    from monai.deploy.core.domain import StudySelectedSeries
    from monai.deploy.operators.dicom_series_to_volume_operator import DICOMSeriesToVolumeOperator

    from operators.series_selector.operator import CTSeriesSelectorOperator
    from operators.study_loader.operator import CTStudyLoaderOperator

    frag = Fragment()
    studies = CTStudyLoaderOperator(frag, name="loader").load_data_to_studies(mixed_study)
    selected, report = CTSeriesSelectorOperator(frag, name="selector").select(studies)
    assert len(selected) == 1 and isinstance(selected[0], StudySelectedSeries)
    ss = selected[0].selected_series
    assert len(ss) == 1 and ss[0].series.SeriesNumber == 2 and ss[0].selection_name == "CT axial original primary"
    rep = report.to_json()
    json.dumps(rep)  # machine readable
    assert rep["chosen"]["SeriesNumber"] == 2 and rep["n_series"] == 4
    s = {x["SeriesNumber"]: x for x in rep["series"]}
    assert [s[n]["status"] for n in (1, 2, 3, 4)] == ["rejected", "chosen", "candidate", "rejected"]
    for item in rep["series"]:
        assert {"StudyInstanceUID", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "n_instances",
                "status", "reasons", "score", "facts"} <= set(item)
        assert item["reasons"]
    scout = " | ".join(s[1]["reasons"])
    assert "ImageType ORIGINAL\\PRIMARY\\LOCALIZER does not match" in scout
    assert "rejected: LOCALIZER image type" in scout and "rejected: only 1 image(s)" in scout
    mpr = " | ".join(s[4]["reasons"])
    assert "not ORIGINAL\\PRIMARY" in mpr and "rejected: not axial" in mpr
    assert s[3]["score"]["kernel_class"] == "sharp" and s[2]["score"]["total"] > s[3]["score"]["total"]
    # SDK operators downstream accept the output
    img = DICOMSeriesToVolumeOperator(frag, name="sdk").convert_to_image(selected)
    assert img.asnumpy().shape == (12, 24, 32)


def test_selector_with_custom_rules_and_min_slices(mixed_study):
    from monai.deploy.core import Fragment

    from operators.series_selector.operator import CTSeriesSelectorOperator
    from operators.study_loader.operator import CTStudyLoaderOperator

    frag = Fragment()
    studies = CTStudyLoaderOperator(frag, name="loader").load_data_to_studies(mixed_study)
    rules = {"selections": [{"name": "lung", "conditions": {"Modality": "CT", "SeriesDescription": "(?i)lung"}}]}
    sel, rep = CTSeriesSelectorOperator(frag, name="s1", rules_json=json.dumps(rules)).select(studies)
    assert sel[0].selected_series[0].series.SeriesNumber == 3 and sel[0].selected_series[0].selection_name == "lung"
    s2 = {x.series_number: x for x in rep.series}[2]
    assert any("SeriesDescription 'Abdomen 5.0 B31f' does not match '(?i)lung'" in r for r in s2.reasons)
    from operators.common.errors import BadInputError
    with pytest.raises(BadInputError, match="at least 20 slices"):
        CTSeriesSelectorOperator(frag, name="s2", min_slices=20).select(studies)


def test_graph_runs_loader_selector_to_volume(mixed_study, tmp_path):
    """The three operators wired in a real Holoscan graph: ports and emitted types line up."""
    from holoscan.conditions import CountCondition
    from monai.deploy.core import Application, Operator, OperatorSpec

    from operators.series_selector.operator import CTSeriesSelectorOperator
    from operators.series_to_volume.operator import SeriesToVolumeOperator
    from operators.study_loader.operator import CTStudyLoaderOperator

    got = {}

    class Sink(Operator):
        def setup(self, spec: OperatorSpec):
            spec.input("image")
            spec.input("ct_volume")
            spec.input("report")

        def compute(self, op_input, op_output, context):
            got["image"] = op_input.receive("image")
            got["vol"] = op_input.receive("ct_volume")
            got["report"] = op_input.receive("report")

    class App(Application):
        def compose(self):
            loader = CTStudyLoaderOperator(self, CountCondition(self, 1), input_folder=mixed_study, name="loader")
            selector = CTSeriesSelectorOperator(self, name="selector")
            to_vol = SeriesToVolumeOperator(self, name="to_volume")
            sink = Sink(self, name="sink")
            self.add_flow(loader, selector, {("dicom_study_list", "dicom_study_list")})
            self.add_flow(selector, to_vol, {("study_selected_series_list", "study_selected_series_list")})
            self.add_flow(selector, sink, {("selection_report", "report")})
            self.add_flow(to_vol, sink, {("image", "image"), ("ct_volume", "ct_volume")})

    App().run()
    assert got["vol"].shape == (12, 24, 32) and got["image"].metadata()["space"] == "LPS"
    assert got["report"]["chosen"]["SeriesNumber"] == 2
    assert got["vol"].meta.series_instance_uid == got["report"]["chosen"]["SeriesInstanceUID"]


def test_selection_config_thickness_range(tmp_path):
    write_series(tmp_path, make_volume(dz=0.625, nz=20, thickness=0.625))
    rep = select_ct_series(_inputs(tmp_path), SelectionConfig(preferred_thickness_mm=(0.5, 5.0)))
    assert rep.chosen.score["thickness"] == 1.0


def test_demo_study_axial_chosen_scout_and_reformat_rejected(demo_study):
    import numpy as np
    from monai.deploy.core import Fragment

    from operators.common.dicom_series import series_to_volume
    from operators.series_selector.operator import CTSeriesSelectorOperator
    from operators.study_loader.operator import CTStudyLoaderOperator

    frag = Fragment()
    studies = CTStudyLoaderOperator(frag, name="loader").load_data_to_studies(demo_study.dicom_dir)
    selected, report = CTSeriesSelectorOperator(frag, name="selector").select(studies)
    s = {v.series_instance_uid: v for v in report.series}
    ax, loc = demo_study.series["axial"], demo_study.series["localizer"]
    assert report.chosen.series_instance_uid == ax["series_instance_uid"]
    assert report.chosen.n_instances == ax["n_images"]
    assert "rejected: LOCALIZER image type (scout / topogram)" in s[loc["series_instance_uid"]].reasons
    cor = " | ".join(s[demo_study.series["coronal"]["series_instance_uid"]].reasons)
    assert "not ORIGINAL\\PRIMARY" in cor and "not axial" in cor
    vol = series_to_volume(selected[0].selected_series[0].series)
    ref = demo_study.phantom.ct
    # the phantom is stored head first (negative z step); our volume runs along the slice normal (feet first)
    flip = (lambda a: a[::-1]) if ref.affine_lps[2, 2] < 0 else (lambda a: a)
    n = ref.shape[0]
    np.testing.assert_allclose(vol.index_to_lps([[0, 0, 0], [7, 5, n - 1]]),
                               ref.index_to_lps([[0, 0, n - 1], [7, 5, 0]] if ref.affine_lps[2, 2] < 0
                                                else [[0, 0, 0], [7, 5, n - 1]]), atol=1e-3)
    # the writer rounds HU to integers and clips below -1024 (unsigned storage)
    np.testing.assert_allclose(vol.hu, flip(np.clip(np.rint(ref.hu), -1024, None)), atol=0.5)
    np.testing.assert_allclose(vol.meta.tube_current_ma, flip(np.rint(ref.meta.tube_current_ma)), atol=0.5)
