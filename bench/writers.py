"""Encode a display image as the file variants the pipeline must read: DICOM, PNG and JPEG.

Every variant is a linear map of the display image (float on [0, 1], MONOCHROME2), so that

- DICOM with a window: rescale, then the LINEAR VOI window (PS3.3 C.11.2.1.2.1), then inversion
  for MONOCHROME1 gives back the display image (to within the stored quantisation step);
- DICOM without a window: a percentile window (e.g. 0.5-99.5 %) over the modality values gives
  back the display image after the same percentile window;
- PNG and JPEG: the sample value divided by the type's maximum gives back the display image.

Encoding is deterministic: the stored value range, the UIDs and the dates follow from
``(seed, index, variant)``. UIDs come from ``generate_uid(entropy_srcs=...)`` under pydicom's
root (a hash of the sources); note that ``generate_uid(prefix=None)`` ignores ``entropy_srcs``
and returns a random ``2.25.<uuid4>``.
The compressed DICOM syntaxes are RLE Lossless (pylibjpeg-rle), JPEG 2000 Lossless
(pylibjpeg-openjpeg) and HTJ2K Lossless (High-Throughput JPEG 2000, written by OpenJPH through
imagecodecs: pydicom has no HTJ2K encoder); all round-trip exactly through pydicom's decoders.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID,
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    JPEG2000Lossless,
    RLELossless,
    generate_uid,
)

from pipeline.image import ImageFormat

JPEG_QUALITY = 90
# Noise hardly compresses: fast zlib settings (level 1, run-length strategy) cost a third of the
# default's time for a slightly smaller file.
PNG_OPTIONS = {"compress_level": 1, "compress_type": zlib.Z_RLE}


@dataclass(frozen=True)
class DicomVariant:
    """How one DICOM variant stores the display image."""

    photometric: str  # "MONOCHROME2" or "MONOCHROME1" (stored inverted)
    bits_stored: int  # 12 or 16, always in 16 bits allocated
    signed: bool  # PixelRepresentation 1 (int16), with a negative RescaleIntercept
    windowed: bool  # WindowCenter/WindowWidth present
    transfer_syntax: UID

    @property
    def sop_class(self) -> UID:
        # DX For Presentation requires unsigned pixels and a window (PS3.3 C.8.11.3, C.8.11.6).
        if self.signed or not self.windowed or self.photometric != "MONOCHROME2":
            return ComputedRadiographyImageStorage
        return DigitalXRayImageStorageForPresentation

    @property
    def rescale_intercept(self) -> int:
        return -1024 if self.signed else 0


def _dicom(photometric: str, kind: str, syntax: UID, windowed: bool = True) -> DicomVariant:
    return DicomVariant(photometric, int(kind[1:]), kind[0] == "s", windowed, syntax)


DICOM_VARIANTS: dict[str, DicomVariant] = {
    "dicom-m2-u12-explicit": _dicom("MONOCHROME2", "u12", ExplicitVRLittleEndian),
    "dicom-m1-u12-explicit": _dicom("MONOCHROME1", "u12", ExplicitVRLittleEndian),
    "dicom-m2-u16-explicit": _dicom("MONOCHROME2", "u16", ExplicitVRLittleEndian),
    "dicom-m2-s16-explicit": _dicom("MONOCHROME2", "s16", ExplicitVRLittleEndian),
    "dicom-m2-s12-explicit": _dicom("MONOCHROME2", "s12", ExplicitVRLittleEndian),
    "dicom-m2-u16-explicit-nowin": _dicom("MONOCHROME2", "u16", ExplicitVRLittleEndian, False),
    "dicom-m1-u12-explicit-nowin": _dicom("MONOCHROME1", "u12", ExplicitVRLittleEndian, False),
    "dicom-m2-u12-rle": _dicom("MONOCHROME2", "u12", RLELossless),
    "dicom-m1-u16-rle": _dicom("MONOCHROME1", "u16", RLELossless),
    "dicom-m2-s16-rle-nowin": _dicom("MONOCHROME2", "s16", RLELossless, False),
    "dicom-m2-u12-j2k": _dicom("MONOCHROME2", "u12", JPEG2000Lossless),
    "dicom-m2-s16-j2k": _dicom("MONOCHROME2", "s16", JPEG2000Lossless),
    "dicom-m2-u12-htj2k": _dicom("MONOCHROME2", "u12", HTJ2KLossless),
}
IMAGE_VARIANTS = ("png-8", "png-16", "jpeg-8")
VARIANTS: tuple[str, ...] = (*DICOM_VARIANTS, *IMAGE_VARIANTS)

_SUFFIX = {ImageFormat.DICOM: ".dcm", ImageFormat.PNG: ".png", ImageFormat.JPEG: ".jpg"}


def variant_format(variant: str) -> ImageFormat:
    """The container format of a variant name (``dicom-...``, ``png-...``, ``jpeg-...``)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    return ImageFormat(variant.split("-", 1)[0])


def file_suffix(variant: str) -> str:
    return _SUFFIX[variant_format(variant)]


def stored_range(variant: str, seed: int, index: int) -> tuple[int, int]:
    """Stored values that display 0 and 1 map to (MONOCHROME1 maps them the other way round)."""
    v = DICOM_VARIANTS[variant]
    rng = np.random.default_rng([seed, index, zlib.crc32(variant.encode())])
    if v.signed:  # values on both sides of zero, about 12 bits' worth of them
        return int(rng.integers(-2048, -1500)), int(rng.integers(1500, 2048))
    top = 2**v.bits_stored - 1
    return int(rng.integers(0, top // 10)), int(rng.integers(top - top // 10, top + 1))


def encode(display: np.ndarray, variant: str, *, seed: int = 0, index: int = 0) -> bytes:
    """Encode ``display`` (float, shape ``(rows, columns)``, on [0, 1]) as ``variant`` bytes."""
    if display.ndim != 2:
        raise ValueError(f"expected a 2-D greyscale image, got shape {display.shape}")
    image = np.clip(display, 0.0, 1.0).astype(np.float32, copy=False)
    fmt = variant_format(variant)
    if fmt is ImageFormat.DICOM:
        return _encode_dicom(image, variant, seed, index)
    if variant == "png-16":
        return _save(Image.fromarray(_quantise(image, 65535, np.uint16)), "PNG")
    pil = Image.fromarray(_quantise(image, 255, np.uint8))
    if fmt is ImageFormat.PNG:
        return _save(pil, "PNG")
    return _save(pil, "JPEG")


def write(path: Path, display: np.ndarray, variant: str, *, seed: int = 0, index: int = 0) -> int:
    """Encode and write one file; returns its size in bytes."""
    data = encode(display, variant, seed=seed, index=index)
    path.write_bytes(data)
    return len(data)


def _quantise(image: np.ndarray, top: int, dtype: type[np.integer]) -> np.ndarray:
    scaled = image * np.float32(top)
    scaled += np.float32(0.5)  # values are >= 0: truncation after +0.5 rounds
    return scaled.astype(dtype)


def _save(pil: Image.Image, kind: str) -> bytes:
    out = io.BytesIO()
    if kind == "PNG":
        pil.save(out, format="PNG", **PNG_OPTIONS)
    else:
        pil.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def _stored_pixels(image: np.ndarray, v: DicomVariant, lo: int, hi: int) -> np.ndarray:
    """``lo + d * (hi - lo)`` rounded, with ``d`` the display (inverted for MONOCHROME1)."""
    if v.photometric == "MONOCHROME1":
        lo, hi = hi, lo
    values = image * np.float32(hi - lo)
    values += np.float32(lo + 0.5)
    np.floor(values, out=values)
    return values.astype(np.int16 if v.signed else np.uint16)


def _encode_dicom(image: np.ndarray, variant: str, seed: int, index: int) -> bytes:
    v = DICOM_VARIANTS[variant]
    lo, hi = stored_range(variant, seed, index)
    pixels = _stored_pixels(image, v, lo, hi)
    ds = _dicom_header(v, variant, seed, index, pixels.shape)
    if v.windowed:
        low, high = lo + v.rescale_intercept, hi + v.rescale_intercept
        # LINEAR window (PS3.3 C.11.2.1.2.1): [c - 0.5 - (w-1)/2, c - 0.5 + (w-1)/2] -> [0, 1]
        ds.WindowCenter = f"{(low + high + 1) / 2:.1f}"
        ds.WindowWidth = str(high - low + 1)
        ds.WindowCenterWidthExplanation = "FULL RANGE"
    if v.transfer_syntax == ExplicitVRLittleEndian:
        stored = pixels
        if v.signed and v.bits_stored < 16:
            # Leave the bits above HighBit clear: readers must sign-extend from BitsStored.
            stored = pixels.view(np.uint16) & np.uint16(2**v.bits_stored - 1)
        ds.PixelData = stored.astype("<u2", copy=False).tobytes()
    elif v.transfer_syntax == HTJ2KLossless:
        _store_htj2k(ds, pixels)
    else:
        ds.compress(
            v.transfer_syntax, pixels, encoding_plugin="pylibjpeg", generate_instance_uid=False
        )
    out = io.BytesIO()
    dcmwrite(out, ds, enforce_file_format=True)
    return out.getvalue()


def _store_htj2k(ds: Dataset, pixels: np.ndarray) -> None:
    """One reversible HTJ2K frame (ISO 15444-15), encapsulated as pydicom's compress() does."""
    import imagecodecs  # only the generator writes HTJ2K

    frame = imagecodecs.htj2k_encode(np.ascontiguousarray(pixels), reversible=True)
    ds.file_meta.TransferSyntaxUID = HTJ2KLossless
    ds.PixelData = encapsulate([bytes(frame)])
    ds["PixelData"].VR = "OB"


def _uid(seed: int, index: int, *parts: str) -> UID:
    return generate_uid(entropy_srcs=["medflow-synthetic", str(seed), str(index), *parts])


def _dicom_header(
    v: DicomVariant, variant: str, seed: int, index: int, shape: tuple[int, ...]
) -> Dataset:
    """A CR or DX For Presentation chest PA header with synthetic (but PHI-shaped) identity."""
    sop_uid = _uid(seed, index, variant, "instance")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = v.sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = v.sop_class
    ds.SOPInstanceUID = sop_uid
    study_date = (date(2020, 1, 1) + timedelta(days=(seed * 7919 + index) % 1800)).strftime(
        "%Y%m%d"
    )
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = f"{8 + index % 10:02d}{index % 60:02d}00"
    ds.AccessionNumber = f"ACC{index:08d}"
    ds.Modality = "DX" if v.sop_class == DigitalXRayImageStorageForPresentation else "CR"
    ds.Manufacturer = "MedFlow synthetic"
    ds.ReferringPhysicianName = ""
    ds.PatientName = f"SYNTH^{index}"
    ds.PatientID = f"SYN{index}"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.StudyInstanceUID = _uid(seed, index, "study")
    ds.SeriesInstanceUID = _uid(seed, index, variant, "series")
    ds.StudyID = str(index)
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.PatientOrientation = ["L", "F"]
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.ImagerPixelSpacing = [f"{430.0 / max(shape):.4f}"] * 2
    if ds.Modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.PresentationLUTShape = "IDENTITY"
        ds.RescaleType = "US"
    ds.Rows, ds.Columns = shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = v.photometric
    ds.BitsAllocated = 16
    ds.BitsStored = v.bits_stored
    ds.HighBit = v.bits_stored - 1
    ds.PixelRepresentation = int(v.signed)
    ds.RescaleIntercept = str(v.rescale_intercept)
    ds.RescaleSlope = "1"
    return ds
