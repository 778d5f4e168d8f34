"""CT dose parameters of a scan: from the study's CT Radiation Dose SR (DICOM TID 10011) or, failing that, from
the image headers.

A CT Radiation Dose SR ("RDSR", X-Ray Radiation Dose SR Storage) holds per irradiation event (CT Acquisition,
TID 10013) the protocol, target region, acquisition type, kVp, tube current, exposure time, scanning length,
collimation, pitch, mean CTDIvol with its phantom (16 cm head / 32 cm body) and DLP, and the study's total DLP.
Older GE scanners write the same TID 10011 tree as an Enhanced SR: that is read too (the SOP class is
reported); any other object (e.g. a dose screen saved as Secondary Capture) is rejected with a
``BadInputError`` naming the file and its SOP class.

The content tree is walked with plain pydicom (vendors differ in capitalisation and legacy codes: items are
matched by code value only). No patient identifiers are logged or returned.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import BadInputError

XRAY_RADIATION_DOSE_SR = "1.2.840.10008.5.1.4.1.1.88.67"
SR_WITH_TEMPLATES = {  # SR SOP classes that may carry a TID 10011 tree (GE writes it as Enhanced SR)
    XRAY_RADIATION_DOSE_SR: "X-Ray Radiation Dose SR Storage",
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR Storage",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR Storage",
}
DOSE_REPORT = "113701"  # X-Ray Radiation Dose Report (root concept)

C = {  # DCM code values of the TID 10011 / 10012 / 10013 items read here
    "accumulated": "113811", "total_events": "113812", "dlp_total": "113813",
    "acquisition": "113819", "acq_params": "113822", "source_params": "113831", "ct_dose": "113829",
    "protocol": "125203", "target_region": "123014", "acq_type": "113820", "event_uid": "113769",
    "exposure_time": "113824", "scanning_length": "113825", "single_collimation": "113826",
    "total_collimation": "113827", "pitch": "113828", "n_sources": "113823", "kvp": "113733",
    "max_ma": "113833", "ma": "113734", "time_per_rotation": "113834", "exposure_mas": "113736",
    "ctdivol": "113830", "phantom": "113835", "dlp": "113838", "modulation": "113842",
    "exposed_range": "113899", "reconstructable_length": "113893",
    "top_z": "113895", "bottom_z": "113896",  # Top / Bottom Z Location of Reconstructable Volume
}
PHANTOM_CM = {"113690": 16, "113691": 32, "113692": 32}  # IEC head, IEC body, NEMA XR21-2000 (body)


@dataclass
class IrradiationEvent:
    """One CT Acquisition of the report. Lengths mm, CTDIvol mGy, DLP mGy.cm, current mA, times s."""

    uid: str = ""
    protocol: str = ""
    target_region: str = ""
    acquisition_type: str = ""  # Spiral Acquisition | Sequenced Acquisition | Constant Angle (topogram) | Stationary
    kvp: float | None = None
    tube_current_ma: float | None = None  # mean over the event (of the first source when several)
    max_tube_current_ma: float | None = None
    exposure_time_s: float | None = None
    exposure_time_per_rotation_s: float | None = None
    exposure_mas: float | None = None
    scanning_length_mm: float | None = None
    exposed_range_mm: float | None = None
    reconstructable_length_mm: float | None = None
    top_z_mm: float | None = None
    bottom_z_mm: float | None = None
    single_collimation_mm: float | None = None
    total_collimation_mm: float | None = None
    pitch: float | None = None
    n_sources: int = 1
    ctdivol_mgy: float | None = None
    ctdi_phantom_cm: int | None = None
    dlp_mgycm: float | None = None
    modulation: str = ""
    sources: list = field(default_factory=list)  # per X-ray source: {"id", "kvp", "ma", "max_ma", ...}

    @property
    def is_tomographic(self) -> bool:
        """A helical or sequential acquisition (not a localizer or a bolus-tracking monitor)."""
        t = self.acquisition_type.lower()
        return ("spiral" in t or "helical" in t or "sequenced" in t or "cone" in t or "free" in t) \
            and "stationary" not in t and "constant angle" not in t


@dataclass
class DoseReport:
    """The dose report of one study (no patient data)."""

    file: str
    sop_class_uid: str
    sop_class_name: str
    manufacturer: str = ""
    model: str = ""
    total_dlp_mgycm: float | None = None
    total_events: int | None = None
    study_instance_uid: str = ""
    events: list[IrradiationEvent] = field(default_factory=list)

    @property
    def sum_event_dlp_mgycm(self) -> float:
        return float(sum(e.dlp_mgycm for e in self.events if e.dlp_mgycm is not None))

    def to_json(self) -> dict:
        return {**{k: v for k, v in asdict(self).items() if k != "events"},
                "events": [asdict(e) for e in self.events]}


def _code(item, attr="ConceptNameCodeSequence"):
    seq = item.get(attr)
    return (str(seq[0].CodeValue), str(seq[0].CodeMeaning)) if seq else (None, None)


def _num(item):
    mv = item.get("MeasuredValueSequence")
    if not mv:
        return None, None
    m = mv[0]
    try:
        v = float(m.NumericValue)
    except (TypeError, ValueError):
        return None, None
    unit = str(m.MeasurementUnitsCodeSequence[0].CodeValue) if m.get("MeasurementUnitsCodeSequence") else ""
    return v, unit


def _to_mm(v, unit):
    return None if v is None else v * {"cm": 10.0, "m": 1000.0}.get(unit, 1.0)


def _children(item):
    return list(item.get("ContentSequence") or [])


def _value(item):
    vt = item.get("ValueType", "")
    if vt == "NUM":
        return _num(item)
    if vt == "CODE":
        return _code(item, "ConceptCodeSequence")[1] or "", None
    if vt == "TEXT":
        return str(item.get("TextValue", "")), None
    if vt == "UIDREF":
        return str(item.get("UID", "")), None
    return None, None


def _text(v, _unit):
    return v or ""


def _number(v, _unit):
    return v


def _count(v, _unit):
    return int(v) if v is not None else 1


# code value -> (IrradiationEvent attribute, conversion of (value, unit)) of the plain items of an acquisition
_EVENT_FIELDS = {C[key]: (attr, convert) for key, attr, convert in (
    ("protocol", "protocol", _text), ("target_region", "target_region", _text),
    ("acq_type", "acquisition_type", _text), ("event_uid", "uid", _text), ("modulation", "modulation", _text),
    ("exposure_time", "exposure_time_s", _number), ("pitch", "pitch", _number),
    ("ctdivol", "ctdivol_mgy", _number), ("dlp", "dlp_mgycm", _number), ("n_sources", "n_sources", _count),
    ("scanning_length", "scanning_length_mm", _to_mm), ("exposed_range", "exposed_range_mm", _to_mm),
    ("reconstructable_length", "reconstructable_length_mm", _to_mm), ("top_z", "top_z_mm", _to_mm),
    ("bottom_z", "bottom_z_mm", _to_mm), ("single_collimation", "single_collimation_mm", _to_mm),
    ("total_collimation", "total_collimation_mm", _to_mm))}


def _event(acq) -> IrradiationEvent:
    ev = IrradiationEvent()

    def visit(items):
        for it in items:
            code, _ = _code(it)
            v, unit = _value(it)
            field = _EVENT_FIELDS.get(code)
            if field is not None:
                attr, convert = field
                setattr(ev, attr, convert(v, unit))
            elif code == C["phantom"]:
                ev.ctdi_phantom_cm = PHANTOM_CM.get(_code(it, "ConceptCodeSequence")[0])
            elif code == C["source_params"]:
                src = {}
                for s in _children(it):
                    sc, _ = _code(s)
                    sv, _ = _value(s)
                    key = {C["kvp"]: "kvp", C["ma"]: "ma", C["max_ma"]: "max_ma", C["exposure_mas"]: "mas",
                           C["time_per_rotation"]: "time_per_rotation_s"}.get(sc)
                    if key:
                        src[key] = sv
                    elif sc == "113832":
                        src["id"] = sv
                ev.sources.append(src)
                continue
            if code in (C["acq_params"], C["ct_dose"]):
                visit(_children(it))

    visit(_children(acq))
    if ev.sources:
        first = ev.sources[0]
        ev.kvp = first.get("kvp")
        ev.tube_current_ma = first.get("ma")
        ev.max_tube_current_ma = first.get("max_ma")
        ev.exposure_time_per_rotation_s = first.get("time_per_rotation_s")
        ev.exposure_mas = first.get("mas")
    if ev.exposure_mas is None and ev.tube_current_ma is not None and ev.exposure_time_s is not None:
        ev.exposure_mas = ev.tube_current_ma * ev.exposure_time_s
    return ev


def read_dose_report(path: str | Path) -> DoseReport:
    """Parse a CT Radiation Dose SR. Raises BadInputError (naming the file and its SOP class) for anything
    that is not one."""
    import pydicom

    path = Path(path)
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as e:
        raise BadInputError(f"{path.name}: not a readable DICOM file ({type(e).__name__})") from e
    uid = str(ds.get("SOPClassUID", ""))
    name = SR_WITH_TEMPLATES.get(uid) or (getattr(ds.get("SOPClassUID"), "name", "") or "unknown SOP class")
    root, _ = _code(ds)
    if uid not in SR_WITH_TEMPLATES or root != DOSE_REPORT:
        raise BadInputError(f"{path.name} is not a CT Radiation Dose SR: SOP class {name} ({uid})"
                            + ("" if uid not in SR_WITH_TEMPLATES else f", document title code {root}"))
    rep = DoseReport(path.name, uid, name, str(ds.get("Manufacturer", "")), str(ds.get("ManufacturerModelName", "")),
                     study_instance_uid=str(ds.get("StudyInstanceUID", "")))
    for it in _children(ds):
        code, _ = _code(it)
        if code == C["accumulated"]:
            for a in _children(it):
                ac, _ = _code(a)
                v, _ = _value(a)
                if ac == C["dlp_total"]:
                    rep.total_dlp_mgycm = v
                elif ac == C["total_events"]:
                    rep.total_events = int(v) if v is not None else None
        elif code == C["acquisition"]:
            rep.events.append(_event(it))
    if not rep.events:
        raise BadInputError(f"{path.name} is not a CT Radiation Dose SR: it holds no CT Acquisition "
                            f"(SOP class {name})")
    return rep


@dataclass
class DoseParameters:
    """What the dose operators need about one scan."""

    dose_source: str  # "rdsr" | "header"
    kvp: float | None
    ctdivol_mgy: float | None
    dlp_mgycm: float | None
    ctdi_phantom_cm: int | None
    scan_length_mm: float | None
    pitch: float | None = None
    total_collimation_mm: float | None = None
    target_region: str = ""
    tube_current_ma: np.ndarray | None = None  # per slice (volume order) from the images: the TCM profile
    mean_tube_current_ma: float | None = None
    modulation: str = ""
    total_dlp_mgycm: float | None = None
    file: str = ""
    event_uid: str = ""
    notes: list = field(default_factory=list)

    def to_json(self) -> dict:
        d = asdict(self)
        d["tube_current_ma"] = None if self.tube_current_ma is None else [round(float(x), 2)
                                                                         for x in self.tube_current_ma]
        return d


def _slice_extent_mm(vol) -> float:
    z = np.asarray(vol.slice_z_mm, float)
    return float(abs(z.max() - z.min()) + (vol.spacing_mm[0] if len(z) else 0.0))


def from_headers(vol) -> DoseParameters:
    """From the CT images: KVP, CTDIvol (series mean), per-slice tube current; DLP = CTDIvol x covered length."""
    m = vol.meta
    length = _slice_extent_mm(vol)
    ma = None if m.tube_current_ma is None else np.asarray(m.tube_current_ma, float)
    phantom = 16 if (m.body_part_examined or "").upper() in ("HEAD", "BRAIN", "SKULL") else (32 if m.ctdivol_mgy else None)
    dp = DoseParameters("header", m.kvp, m.ctdivol_mgy,
                        None if m.ctdivol_mgy is None else float(m.ctdivol_mgy) * length / 10.0, phantom, length,
                        tube_current_ma=ma, mean_tube_current_ma=None if ma is None else float(ma.mean()))
    dp.notes.append("CTDI phantom assumed from BodyPartExamined" if phantom else "no CTDIvol in the headers")
    return dp


def match_event(report: DoseReport, vol=None) -> IrradiationEvent:
    """The irradiation event that made the series: among the helical / sequential events (with CTDIvol), the one
    with the image kVp whose scanning length is closest to the series' covered length; else the largest DLP."""
    cands = [e for e in report.events if e.is_tomographic and e.ctdivol_mgy is not None] or \
            [e for e in report.events if e.ctdivol_mgy is not None]
    if not cands:
        raise BadInputError(f"{report.file}: no irradiation event with a CTDIvol")
    if vol is not None:
        kvp = vol.meta.kvp
        same = [e for e in cands if kvp is None or e.kvp is None or abs(e.kvp - kvp) < 0.5] or cands
        length = _slice_extent_mm(vol)
        with_len = [e for e in same if e.scanning_length_mm]
        if with_len:
            return min(with_len, key=lambda e: abs(e.scanning_length_mm - length))
        cands = same
    return max(cands, key=lambda e: e.dlp_mgycm or 0.0)


def dose_parameters(vol=None, rdsr_paths=()) -> DoseParameters:
    """Dose parameters of the series ``vol`` (CTVolume, may be None): from the first readable CT Radiation Dose SR
    of the same study among ``rdsr_paths`` (its matching event), else from the image headers. Objects that are not dose SRs are
    skipped with a note (a study folder holds all kinds of objects)."""
    notes = []
    for p in rdsr_paths:
        try:
            rep = read_dose_report(p)
        except BadInputError as e:
            notes.append(str(e))
            continue
        study = getattr(getattr(vol, "meta", None), "study_instance_uid", "") if vol is not None else ""
        if study and rep.study_instance_uid and rep.study_instance_uid != study:
            notes.append(f"{rep.file}: dose report of another study, not used")
            continue
        ev = match_event(rep, vol)
        ma = None if vol is None or vol.meta.tube_current_ma is None else np.asarray(vol.meta.tube_current_ma, float)
        return DoseParameters("rdsr", ev.kvp, ev.ctdivol_mgy, ev.dlp_mgycm, ev.ctdi_phantom_cm,
                              ev.scanning_length_mm, ev.pitch, ev.total_collimation_mm, ev.target_region,
                              ma, ev.tube_current_ma, ev.modulation, rep.total_dlp_mgycm, rep.file, ev.uid,
                              notes + [f"event '{ev.protocol or ev.acquisition_type}' of {len(rep.events)}"])
    if vol is None:
        raise BadInputError("no CT Radiation Dose SR could be read and no CT series was given: "
                            + "; ".join(notes))
    dp = from_headers(vol)
    dp.notes = notes + dp.notes
    return dp


def find_dose_reports(folder: str | Path) -> list[Path]:
    """DICOM files in ``folder`` (recursive) whose SOP class is an SR that may hold a dose report."""
    import pydicom

    out = []
    for p in sorted(Path(folder).rglob("*")):
        if not p.is_file():
            continue
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True, specific_tags=["SOPClassUID"])
        except Exception:
            continue
        if str(ds.get("SOPClassUID", "")) in SR_WITH_TEMPLATES:
            out.append(p)
    return out
