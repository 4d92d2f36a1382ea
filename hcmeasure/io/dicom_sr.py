"""The measured head as a DICOM Structured Report, for the archive the scan came from.

One Comprehensive SR per measured DICOM image (or frame), built with ``highdicom`` as
a TID 1500 Measurement Report holding one TID 1410 planar ROI group:

* the region: the fitted head ellipse as an image-region SCOORD of graphic type
  ``ELLIPSE`` (end points of the major axis, then of the minor axis) referencing the
  source image's SOP Class and Instance UIDs and, in a multi-frame file, its frame;
* measurements, in ``mm`` (UCUM), with LOINC codes as DICOM lists them in CID 12005
  "Fetal Biometry Measurements": head circumference 11984-2, biparietal diameter
  11820-8, occipital-frontal diameter 11851-3 (both outer-to-outer at the ellipse,
  see :mod:`hcmeasure.measurement.biometry`);
* the algorithm's name (``hcmeasure``), version and the model it ran, and a device
  observer named ``hcmeasure``; finding type "Fetal Cranium" (DCM 125004), procedure
  "Ultrasound scan - obstetric" (SCT 268445003).

Every value is taken from the image's ``measurements.csv`` row, so the SR and the CSV
agree to the digit. The SR joins the source's study: patient and study attributes
(name, ID, issuer, birth date, sex, study UID/ID/date/time, accession number,
referring physician) are copied from the source, which is why, unlike every other
output of hcmeasure, it holds identifiers. Its own series is new (one per study and
run). DICOM image coordinates put ``(0, 0)`` at the top-left corner of the top-left
pixel, hcmeasure's at that pixel's centre: the SCOORD points are hcmeasure's plus 0.5.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..measurement.biometry import axis_endpoints_px
from ..measurement.ellipse import Ellipse
from .dicom import is_dicom_file
from .tables import atomic_write_bytes

__all__ = [
    "ALGORITHM_NAME",
    "SR_FOLDER",
    "SRRequest",
    "head_ellipse_graphic_data",
    "build_head_sr",
    "write_head_srs",
]

ALGORITHM_NAME = "hcmeasure"
#: SRs are written to ``OUT/sr/``.
SR_FOLDER = "sr"

#: Patient and General Study attributes of Type 2 that highdicom copies from the source;
#: a source without one gets it empty in the SR (as Type 2 allows), not an error.
_TYPE2_IDENTITY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                   "ReferringPhysicianName", "StudyID", "AccessionNumber")
#: Further Patient module attributes copied when the source has them.
_EXTRA_IDENTITY = ("IssuerOfPatientID",)

#: (source file, row name such as ``scan.dcm#2``, measurements.csv row)
SRRequest = tuple[Path, str, Mapping[str, str]]


def _row_float(row: Mapping[str, str], key: str) -> float | None:
    try:
        value = float(row.get(key) or "")
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def head_ellipse_graphic_data(row: Mapping[str, str]) -> np.ndarray:
    """``(4, 2)`` float32 ELLIPSE graphic data (column, row) in DICOM image coordinates
    for the mm head ellipse of a ``measurements.csv`` row: major-axis end points, then
    minor-axis end points, mapped to pixels by the row's pixel sizes."""
    values = [_row_float(row, k) for k in ("center_x_mm", "center_y_mm", "semi_axes_a_mm", "semi_axes_b_mm",
                                           "angle_rad", "pixel_size_mm")]
    if any(v is None for v in values):
        raise ValueError(f"{row.get('filename')}: the row has no ellipse in mm")
    cx, cy, a, b, angle, dx = values
    dy = _row_float(row, "pixel_size_y_mm") or dx
    major, minor = axis_endpoints_px(Ellipse.normalized(cx, cy, a, b, angle), dx, dy)
    return (np.concatenate([major, minor]) + 0.5).astype(np.float32)


def _frame_number(name: str) -> int | None:
    _, _, frame = name.partition("#")
    return int(frame) if frame else None


def _evidence(source):
    """A copy of the source header with missing Type 2 identity attributes empty."""
    from copy import deepcopy

    ev = deepcopy(source)
    for keyword in _TYPE2_IDENTITY:
        if keyword not in ev:
            setattr(ev, keyword, None)
    return ev


def build_head_sr(source, row: Mapping[str, str], *, series_instance_uid: str, instance_number: int,
                  algorithm_version: str, algorithm_parameters: Sequence[str] = ()):
    """Comprehensive SR (a ``highdicom`` dataset) for one row measured on ``source``
    (the source image's pydicom dataset; its pixel data is not needed)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    frame = _frame_number(str(row["filename"]))
    n_frames = int(source.get("NumberOfFrames", 1) or 1)
    algorithm = hd.sr.AlgorithmIdentification(
        name=ALGORITHM_NAME, version=algorithm_version, parameters=list(algorithm_parameters) or None)
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=[ALGORITHM_NAME]), name=ALGORITHM_NAME, manufacturer_name=ALGORITHM_NAME))
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.ELLIPSE,
        graphic_data=head_ellipse_graphic_data(row),
        source_image=hd.sr.SourceImageForRegion(
            referenced_sop_class_uid=source.SOPClassUID,
            referenced_sop_instance_uid=source.SOPInstanceUID,
            referenced_frame_numbers=[frame] if (frame is not None and n_frames > 1) else None))
    mm = hd.sr.CodedConcept("mm", "UCUM", "millimeter")
    measurements = [
        hd.sr.Measurement(name=code, value=value, unit=mm, algorithm_id=algorithm)
        for code, key in ((codes.LN.HeadCircumference, "hc_mm"), (codes.LN.BiparietalDiameter, "bpd_mm"),
                          (codes.LN.OccipitalFrontalDiameter, "ofd_mm"))
        if (value := _row_float(row, key)) is not None
    ]
    group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="fetal head ellipse"),
        referenced_region=region, finding_type=codes.DCM.FetalCranium, algorithm_id=algorithm,
        measurements=measurements)
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.SCT.UltrasoundScanObstetric, imaging_measurements=[group])
    sr = hd.sr.ComprehensiveSR(
        evidence=[_evidence(source)], content=report[0], series_instance_uid=series_instance_uid,
        series_number=900, sop_instance_uid=generate_uid(), instance_number=instance_number,
        manufacturer=ALGORITHM_NAME, is_complete=True, series_description="hcmeasure fetal head biometry")
    for keyword in _EXTRA_IDENTITY:
        if keyword in source:
            setattr(sr, keyword, source.get(keyword))
    return sr


def _sr_name(name: str, taken: set[str]) -> str:
    base, _, frame = name.partition("#")
    path = Path(base)
    stem = path.stem if path.suffix else path.name
    out = f"{stem}{'_frame' + frame if frame else ''}_sr.dcm"
    if out in taken:
        out = f"{stem}_{path.suffix.lstrip('.').lower() or 'dicom'}{'_frame' + frame if frame else ''}_sr.dcm"
    taken.add(out)
    return out


def write_head_srs(requests: Iterable[SRRequest], out_dir, *, algorithm_version: str,
                   algorithm_parameters: Sequence[str] = ()) -> tuple[list[Path], list[str]]:
    """Write one SR per measured DICOM request into ``out_dir`` (atomically).

    Returns the files written and one message for each request that gets no SR: a
    source that is not DICOM, a row without an HC in mm, or a source that cannot be
    read again. Such a request never stops the others.
    """
    import pydicom
    from pydicom.uid import generate_uid

    out_dir = Path(out_dir)
    written: list[Path] = []
    messages: list[str] = []
    series: dict[str, list] = {}  # study UID -> [series UID, instances so far]
    taken: set[str] = set()
    sources: dict[Path, object] = {}
    not_dicom: list[str] = []
    for path, name, row in requests:
        path = Path(path)
        if not is_dicom_file(path):
            not_dicom.append(name)
            continue
        if row.get("status") != "ok" or not row.get("hc_mm"):
            messages.append(f"{name}: no DICOM SR, the head was not measured in mm (status "
                            f"{row.get('status') or 'unknown'})")
            continue
        try:
            if path not in sources:
                sources[path] = pydicom.dcmread(path, stop_before_pixels=True)
            source = sources[path]
            study = str(source.StudyInstanceUID)
            entry = series.setdefault(study, [generate_uid(), 0])
            entry[1] += 1
            sr = build_head_sr(source, row, series_instance_uid=entry[0], instance_number=entry[1],
                               algorithm_version=algorithm_version, algorithm_parameters=algorithm_parameters)
            buf = io.BytesIO()
            sr.save_as(buf, enforce_file_format=True)
            target = out_dir / _sr_name(name, taken)
            atomic_write_bytes(target, buf.getvalue())
        except Exception as exc:  # one SR lost must not lose the others or the CSV
            messages.append(f"{name}: DICOM SR not written ({type(exc).__name__}: {exc})")
            continue
        written.append(target)
    if not_dicom:
        shown = ", ".join(not_dicom[:5]) + (f" and {len(not_dicom) - 5} more" if len(not_dicom) > 5 else "")
        messages.insert(0, f"--dicom-sr: {len(not_dicom)} input(s) are not DICOM files ({shown}): no SR for them, "
                           "since an SR must belong to the patient and study of a DICOM source image; their "
                           "results are in measurements.csv")
    return written, messages
