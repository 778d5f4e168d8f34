"""TID 1500 Measurement Report (Comprehensive 3D SR) with highdicom, from generic measurement groups.

Generic inputs, so one writer carries every CorpusCT result:

    MeasurementGroup(tracking_id="liver", finding_type=ORGAN_BY_NAME["liver"].code,
                     finding_site=ORGAN_BY_NAME["liver"].code, segment=SegmentRef.of(seg_result, "liver"),
                     measurements=[Quantity(VOLUME, 1520.3, "ml"),
                                   Quantity(ATTENUATION_COEFFICIENT, 58.1, "[hnsf'U]", derivation=MEAN)],
                     evaluations=[Evaluation(TARGET_REGION, Code(...)), Evaluation(name_code, "free text")])

* organ volumes (ml) and mean HU, body-composition areas (cm2, cm2/m2, cm2/kg), organ doses (mGy): ``Quantity``
  with a UCUM unit code (``codes.UCUM_UNITS``);
* body parts and scan range: ``Evaluation`` (coded value: CODE content item; string: TEXT content item) and
  ``Quantity`` in mm;
* a group with a ``segment`` reference becomes a TID 1411 volumetric ROI group that references the SEG segment
  (and the SEG's source series); a group without one becomes a TID 1501 group. Every group carries a tracking
  identifier (text + UID) and the algorithm identification; the CT images are listed in the image library.

``build_measurement_report`` returns the highdicom document; ``write_measurement_report`` writes it.
One concrete builder so far: ``organ_volume_groups`` / ``write_organ_volume_report`` (organ volumes and mean
HU from a label map, used by the organ segmentation app). ``measurement_table(sr)`` reads the groups back.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from operators.common.labels import ORGANS, PRIVATE_SCHEME, Code, Label
from operators.common.provenance import code_version
from operators.common.volume import CTVolume

from . import codes as C
from .codes import coded, unit
from .common import (
    MANUFACTURER,
    MODEL_NAME,
    OutputIdentity,
    SourceSeries,
    WrittenObject,
    as_source,
    new_uid,
    no_person_name_warnings,
    save_dataset,
)
from .seg import SEGMENTATION_STORAGE, SegResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quantity:
    """One numeric measurement (TID 300): concept name, value, UCUM unit code."""

    name: Code
    value: float
    unit: str
    derivation: Code | None = None  # e.g. codes.MEAN
    method: Code | None = None
    unit_meaning: str | None = None


@dataclass(frozen=True)
class Evaluation:
    """A qualitative evaluation: coded value (CODE item) or free text (TEXT item)."""

    name: Code
    value: Code | str


@dataclass(frozen=True)
class SegmentRef:
    """Reference to one segment of a SEG instance (and the CT series it was derived from)."""

    sop_instance_uid: str
    segment_number: int
    source_series_instance_uid: str
    sop_class_uid: str = SEGMENTATION_STORAGE

    @classmethod
    def of(cls, seg: SegResult, name_or_id: str | int) -> SegmentRef | None:
        s = seg.segment(name_or_id)
        if s is None:
            return None
        return cls(seg.sop_instance_uid, s.number, seg.source_series_instance_uid, seg.sop_class_uid)


@dataclass
class MeasurementGroup:
    tracking_id: str  # human-readable, unique in the report (e.g. the label name)
    measurements: list[Quantity] = field(default_factory=list)
    evaluations: list[Evaluation] = field(default_factory=list)
    finding_type: Code | None = None
    finding_site: Code | None = None
    segment: SegmentRef | None = None
    tracking_uid: str | None = None  # default: the SEG segment's TrackingUID if known, else new


@dataclass
class SRResult(WrittenObject):
    groups: list[MeasurementGroup] = field(default_factory=list)

    def to_json(self) -> dict:
        out = super().to_json()
        out["groups"] = [g.tracking_id for g in self.groups]
        return out


def _quantity(q: Quantity, algo, hd):
    if not np.isfinite(q.value):
        raise ValueError(f"measurement {q.name.meaning} is not finite ({q.value})")
    return hd.sr.Measurement(name=coded(q.name), value=float(q.value), unit=unit(q.unit, q.unit_meaning),
                             derivation=coded(q.derivation) if q.derivation else None,
                             method=coded(q.method) if q.method else None, algorithm_id=algo)


def _group(g: MeasurementGroup, algo, hd):
    tracking = hd.sr.TrackingIdentifier(uid=g.tracking_uid or new_uid(), identifier=g.tracking_id[:64])
    measurements = [_quantity(q, algo, hd) for q in g.measurements]
    coded_evals = [hd.sr.QualitativeEvaluation(coded(e.name), coded(e.value))
                   for e in g.evaluations if not isinstance(e.value, str)]
    common = dict(tracking_identifier=tracking, algorithm_id=algo,
                  finding_type=coded(g.finding_type) if g.finding_type else None,
                  finding_sites=[hd.sr.FindingSite(coded(g.finding_site))] if g.finding_site else None,
                  measurements=measurements or None, qualitative_evaluations=coded_evals or None)
    if g.segment is not None:
        ref = hd.sr.ReferencedSegment(
            sop_class_uid=g.segment.sop_class_uid, sop_instance_uid=g.segment.sop_instance_uid,
            segment_number=int(g.segment.segment_number),
            source_series=hd.sr.SourceSeriesForSegmentation(g.segment.source_series_instance_uid))
        group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(referenced_segment=ref, **common)
    else:
        group = hd.sr.MeasurementsAndQualitativeEvaluations(**common)
    texts = [e for e in g.evaluations if isinstance(e.value, str)]
    for e in texts:  # TID 1501/1411 allow TEXT qualitative evaluations; highdicom only builds CODE ones
        group[0].ContentSequence.append(hd.sr.TextContentItem(
            name=coded(e.name), value=e.value[:1024], relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    return group


PRIVATE_SCHEMES = {PRIVATE_SCHEME: "CorpusCT private codes (body parts, scan range, derived indices)"}


def _codes_of(g: MeasurementGroup) -> list[Code]:
    out = [c for c in (g.finding_type, g.finding_site) if isinstance(c, Code)]
    for q in g.measurements:
        out += [c for c in (q.name, q.derivation, q.method) if isinstance(c, Code)]
    for e in g.evaluations:
        out += [c for c in (e.name, e.value) if isinstance(c, Code)]
    return out


def build_measurement_report(source: SourceSeries | CTVolume, groups: Sequence[MeasurementGroup], *,
                             referenced_objects: Sequence[Dataset | str | Path] = (),
                             algorithm_name: str = "CorpusCT", algorithm_version: str | None = None,
                             model_versions: Mapping[str, str] | None = None,
                             description: str = "CorpusCT measurements", series_number: int = 911,
                             procedure_reported: Code = C.CT_UNSPECIFIED_BODY_REGION, image_library: bool = False):
    """highdicom ``Comprehensive3DSR`` holding a TID 1500 Measurement Report of ``groups``.

    referenced_objects: SEG instances (datasets or files; headers suffice) whose segments the groups
    reference: they are listed as evidence with the source CT images (Current Requested Procedure Evidence).
    image_library: also list every CT image in the report's Image Library (TID 1600). Off by default: highdicom
    spends ~25 ms per image on it (9 s for a 356-slice series), and the CT series is referenced anyway by
    the evidence and by each segment reference (source series)."""
    import highdicom as hd

    src = as_source(source)
    if not groups:
        raise ValueError("a measurement report needs at least one measurement group")
    ids = [g.tracking_id for g in groups]
    if len(set(ids)) != len(ids):
        raise ValueError("tracking identifiers must be unique within a report")
    version = algorithm_version or code_version()
    params = [f"{k}={v}" for k, v in (model_versions or {}).items()] or None
    algo = hd.sr.AlgorithmIdentification(name=algorithm_name[:64], version=version[:64], parameters=params)
    ident = OutputIdentity(description, series_number, dict(model_versions or {}))
    observer = hd.sr.ObserverContext(
        observer_type=coded(("121007", "Device", "DCM")),
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=new_uid(), name=algorithm_name[:64], manufacturer_name=MANUFACTURER, model_name=MODEL_NAME))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=coded(procedure_reported),
        imaging_measurements=[_group(g, algo, hd) for g in groups],
        referenced_images=src.datasets if image_library else None)
    evidence = list(src.datasets)
    for obj in referenced_objects:
        evidence.append(obj if isinstance(obj, Dataset) else pydicom.dcmread(str(obj), stop_before_pixels=True))
    private = sorted({c.scheme for g in groups for c in _codes_of(g) if c.scheme.startswith("99")})
    schemes = [hd.coding_schemes.CodingSchemeIdentificationItem(
        designator=p, name=PRIVATE_SCHEMES.get(p, f"{p} (private coding scheme)"),
        responsible_organization=MANUFACTURER) for p in private] or None
    with no_person_name_warnings():
        return hd.sr.Comprehensive3DSR(
            evidence=evidence, coding_schemes=schemes, content=report[0], series_instance_uid=ident.series_instance_uid,
            series_number=int(series_number), sop_instance_uid=ident.sop_instance_uid, instance_number=1,
            manufacturer=MANUFACTURER, manufacturer_model_name=MODEL_NAME, software_versions=ident.software_versions,
            device_serial_number="NONE", series_description=ident.series_description, is_complete=True,
            is_final=False, is_verified=False)


def write_measurement_report(source: SourceSeries | CTVolume, groups: Sequence[MeasurementGroup],
                             out_path: str | Path, **kwargs) -> SRResult:
    sr = build_measurement_report(source, groups, **kwargs)
    path = save_dataset(sr, out_path)
    base = WrittenObject.of(sr, path, "SR")
    return SRResult(**base.__dict__, groups=list(groups))


# --- concrete builder: organ volumes and mean HU ------------------------------------------------------

def organ_volume_groups(volume: CTVolume, label_map: np.ndarray, label_table: Sequence[Label] = ORGANS, *,
                        label_ids: Sequence[int] | None = None, seg: SegResult | None = None) -> list[MeasurementGroup]:
    """One group per non-empty label: volume (ml) and mean attenuation (HU) inside the label; references the
    label's SEG segment when ``seg`` is given (tracking UID shared with the segment)."""
    lab = np.asarray(label_map)
    if lab.shape != volume.shape:
        raise ValueError(f"label map {lab.shape} is not on the CT grid {volume.shape}")
    lab = lab.astype(np.intp, copy=False).ravel()
    voxel_ml = abs(float(np.linalg.det(volume.affine_lps[:3, :3]))) / 1000.0
    counts = np.bincount(lab, minlength=256)
    sums = np.bincount(lab, weights=np.asarray(volume.hu, np.float64).ravel(), minlength=256)
    groups = []
    for lt in label_table:
        if (label_ids is not None and lt.id not in set(label_ids)) or counts[lt.id] == 0:
            continue
        ref = SegmentRef.of(seg, lt.id) if seg is not None else None
        seg_info = seg.segment(lt.id) if seg is not None else None
        groups.append(MeasurementGroup(
            tracking_id=lt.name, finding_type=lt.code, finding_site=lt.code, segment=ref,
            tracking_uid=seg_info.tracking_uid if seg_info else None,
            measurements=[Quantity(C.VOLUME, round(counts[lt.id] * voxel_ml, 2), "ml"),
                          Quantity(C.ATTENUATION_COEFFICIENT, round(sums[lt.id] / counts[lt.id], 1), "[hnsf'U]",
                                   derivation=C.MEAN)]))
    return groups


def write_organ_volume_report(volume: CTVolume, label_map: np.ndarray, out_path: str | Path, *,
                              label_table: Sequence[Label] = ORGANS, label_ids: Sequence[int] | None = None,
                              seg: SegResult | None = None, source: SourceSeries | None = None,
                              description: str = "CorpusCT organ volumes SR", **kwargs) -> SRResult:
    groups = organ_volume_groups(volume, label_map, label_table, label_ids=label_ids, seg=seg)
    if not groups:
        raise ValueError("no organ in the label map: nothing to report")
    refs = [seg.path] if seg is not None else []
    return write_measurement_report(source or volume, groups, out_path, referenced_objects=refs,
                                    description=description, **kwargs)


# --- reading back -------------------------------------------------------------------------------------

def _walk(items, out: dict):
    for it in items:
        vt = it.get("ValueType", "")
        name = it.ConceptNameCodeSequence[0].CodeMeaning if "ConceptNameCodeSequence" in it else ""
        if vt == "NUM" and "MeasuredValueSequence" in it:
            mv = it.MeasuredValueSequence[0]
            deriv = ""
            for sub in it.get("ContentSequence", []):
                if sub.ConceptNameCodeSequence[0].CodeMeaning == "Derivation":
                    deriv = sub.ConceptCodeSequence[0].CodeMeaning
            key = f"{deriv} {name}".strip()
            value = (float(mv.NumericValue), str(mv.MeasurementUnitsCodeSequence[0].CodeValue))
            out["measurements"].setdefault(key, value)  # first one under the plain name ...
            out["measurements"][f"{key} [{value[1]}]"] = value  # ... every one under "name [unit]"
        elif vt == "TEXT" and name == "Tracking Identifier":
            out["tracking_id"] = str(it.TextValue)
        elif vt == "UIDREF" and name == "Tracking Unique Identifier":
            out["tracking_uid"] = str(it.UID)
        elif vt == "TEXT":
            out["evaluations"][name] = str(it.TextValue)
        elif vt == "CODE":
            out["codes"][name] = str(it.ConceptCodeSequence[0].CodeMeaning)
        elif vt == "IMAGE" and name == "Referenced Segment":
            ref = it.ReferencedSOPSequence[0]
            out["segment"] = (str(ref.ReferencedSOPInstanceUID), int(ref.ReferencedSegmentNumber))


def measurement_table(sr: str | Path | Dataset) -> list[dict]:
    """The measurement groups of a TID 1500 report, read with pydicom: [{tracking_id, tracking_uid,
    measurements {"[derivation ]name": (value, unit), "[derivation ]name [unit]": (value, unit)},
    codes {name: meaning}, evaluations {name: text} (TEXT items: text evaluations, algorithm name/version),
    segment (SEG SOP UID, number) or None}]."""
    ds = sr if isinstance(sr, Dataset) else pydicom.dcmread(str(sr))
    groups = []

    def visit(items):
        for it in items:
            name = it.ConceptNameCodeSequence[0].CodeMeaning if "ConceptNameCodeSequence" in it else ""
            if it.get("ValueType") == "CONTAINER" and name == "Measurement Group":
                g = {"tracking_id": None, "tracking_uid": None, "measurements": {}, "codes": {},
                     "evaluations": {}, "segment": None}
                _walk(it.get("ContentSequence", []), g)
                groups.append(g)
            elif it.get("ValueType") == "CONTAINER":
                visit(it.get("ContentSequence", []))

    visit(ds.ContentSequence)
    return groups
