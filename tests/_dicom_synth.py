"""Builds small ultrasound DICOM files with pydicom for the tests (not a test module)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

US_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.6.1"
US_MULTIFRAME_STORAGE = "1.2.840.10008.5.1.4.1.1.3.1"


def region(x0, y0, x1, y1, dx_cm, dy_cm, units=3):
    """One SequenceOfUltrasoundRegions item (spatial 2D region; units 3 = cm)."""
    from pydicom.dataset import Dataset

    item = Dataset()
    item.RegionSpatialFormat = 1
    item.RegionDataType = 1
    item.RegionFlags = 0
    item.RegionLocationMinX0, item.RegionLocationMinY0 = int(x0), int(y0)
    item.RegionLocationMaxX1, item.RegionLocationMaxY1 = int(x1), int(y1)
    item.PhysicalUnitsXDirection = units
    item.PhysicalUnitsYDirection = units
    item.PhysicalDeltaX = float(dx_cm)
    item.PhysicalDeltaY = float(dy_cm)
    return item


def write_us_dicom(path, pixels, *, photometric=None, regions=(), pixel_spacing=None,
                   imager_pixel_spacing=None, patient_name="Doe^Jane", patient_id="PAT-0042",
                   rle=False, burned_in=None, extra=None) -> Path:
    """Write ``pixels`` ((H, W), (F, H, W), (H, W, 3) or (F, H, W, 3); uint8 or uint16)
    as an Ultrasound (Multi-frame) Image Storage file with correct file meta.
    ``extra``: further attributes by keyword (e.g. ``{"LastMenstrualDate": "20260101"}``)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

    arr = np.ascontiguousarray(pixels)
    colour = arr.ndim == 4 or (arr.ndim == 3 and arr.shape[-1] == 3 and photometric not in ("MONOCHROME1", "MONOCHROME2"))
    frames = arr.shape[0] if (arr.ndim == 4 or (arr.ndim == 3 and not colour)) else 1
    rows, cols = (arr.shape[-3], arr.shape[-2]) if colour else (arr.shape[-2], arr.shape[-1])
    photometric = photometric or ("RGB" if colour else "MONOCHROME2")
    sop_class = US_MULTIFRAME_STORAGE if frames > 1 else US_IMAGE_STORAGE

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "US"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19900101"
    ds.StudyDate = "20260101"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = photometric
    if colour:
        ds.PlanarConfiguration = 0
    bits = 16 if arr.dtype == np.uint16 else 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
        ds.FrameIncrementPointer = 0x00181063
        ds.FrameTime = 33.3
    if regions:
        ds.SequenceOfUltrasoundRegions = Sequence(list(regions))
    if pixel_spacing is not None:
        ds.PixelSpacing = [float(v) for v in pixel_spacing]
    if imager_pixel_spacing is not None:
        ds.ImagerPixelSpacing = [float(v) for v in imager_pixel_spacing]
    if burned_in is not None:
        ds.BurnedInAnnotation = "YES" if burned_in else "NO"
    for keyword, value in (extra or {}).items():
        setattr(ds, keyword, value)
    ds.PixelData = arr.tobytes()
    if rle:
        ds.compress(RLELossless, arr)
    path = Path(path)
    ds.save_as(path, enforce_file_format=True)
    return path
