"""Record, once, what reference decoders make of every real DICOM file our packages ship.

Run by hand when the set of files changes (never by the tests, which only read the result):

    .venv/bin/python -m tests.golden.record_reference

For each DICOM file the test-data packages install (:mod:`tests.golden.sources`: pydicom's
wheel, ``pydicom-data`` and ``deid-data``; local paths only, nothing is downloaded), the
reference tool decompresses the pixel
data to a native file: DCMTK (``dcmconv +te``, ``dcmdrle``, ``dcmdjpeg +cn``, ``dcmdjpls``) or,
for JPEG 2000, GDCM (``gdcmconv --raw``). pydicom then reads that *native* file (byte order,
unused bits, YBR to RGB: no codec involved), and the checksum of its stored values
(:mod:`tests.golden.canonical`) goes into ``reference.json`` with what MedFlow must answer:
``decodes`` (to exactly those values) or an error code. The script refuses to write a table
in which MedFlow decodes an image to other values than the reference, unless the syntax is
lossy and every value is within ``LOSSY_TOLERANCE``: then the row also records the checksum of
MedFlow's decoder (the IDCT it matches) and the largest difference seen.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pydicom
from pydicom import config, dcmread, uid

from pipeline.dicom import read_stored
from pipeline.errors import ImageError
from pipeline.limits import ImageLimits
from tests.golden.canonical import REFERENCE_FILE, checksum
from tests.golden.sources import installed_dicom_files

ANY_SIZE = ImageLimits(min_side=1)
LOSSY_TOLERANCE = 3  # JPEG IDCT rounding (ISO 10918-2 allows implementations to differ)
LOSSY = {uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLSNearLossless, uid.JPEG2000}
_J2K = {uid.JPEG2000Lossless, uid.JPEG2000, uid.HTJ2KLossless, uid.HTJ2KLosslessRPCL, uid.HTJ2K}


def reference_commands(syntax: str) -> list[list[str]]:
    """Reference tools for ``syntax``, in order of preference; GDCM is always the last resort."""
    gdcm = ["gdcmconv", "--raw", "-i", "{source}", "-o", "{target}"]
    if syntax in uid.JPEGTransferSyntaxes:
        first = ["dcmdjpeg", "+cn"]  # raw YCbCr out: pydicom then does our colour maths
    elif syntax in uid.JPEGLSTransferSyntaxes:
        first = ["dcmdjpls"]
    elif syntax == uid.RLELossless:
        first = ["dcmdrle"]
    elif syntax in {*uid.UncompressedTransferSyntaxes, uid.DeflatedExplicitVRLittleEndian}:
        first = ["dcmconv", "+te"]
    else:
        return [gdcm]
    return [[*first, "{source}", "{target}"], gdcm]


def reference_values(path: Path, syntax: str) -> tuple[np.ndarray, str] | None:
    """The first reference tool's stored values for ``path``'s one frame, and its command."""
    for command in reference_commands(syntax):
        with tempfile.TemporaryDirectory() as scratch:
            target = Path(scratch) / "native.dcm"
            paths = {"{source}": str(path), "{target}": str(target)}
            argv = [paths.get(word, word) for word in command]
            if subprocess.run(argv, capture_output=True).returncode or not target.exists():
                continue
            try:
                dataset = dcmread(target)
                if int(dataset.get("NumberOfFrames", 1) or 1) != 1:
                    return None
                values = np.asarray(dataset.pixel_array)
            except Exception:  # the tool wrote no usable image: try the next one
                continue
            return values, " ".join(word for word in command if word not in paths)
    return None


def transfer_syntax(data: bytes) -> str | None:
    try:
        return str(
            dcmread(
                __import__("io").BytesIO(data), stop_before_pixels=True, force=True
            ).file_meta.TransferSyntaxUID
        )
    except Exception:  # no File Meta: MedFlow refuses it, no reference needed
        return None


def record_row(name: str, path: Path) -> dict[str, object]:
    data = path.read_bytes()
    syntax = transfer_syntax(data)
    row: dict[str, object] = {"file": name, "transfer_syntax": syntax}
    try:
        ours = read_stored(data, ANY_SIZE).pixels
    except ImageError as exc:
        ours = None
        row["expect"] = str(exc.code)
    reference = reference_values(path, syntax) if syntax else None
    if reference is not None:
        values, tool = reference
        row |= {"reference_tool": tool, "reference_sha256": checksum(values)}
    if ours is None:
        row["reference_decodes"] = reference is not None
        return row
    row["expect"] = "decodes"
    if reference is None:
        raise SystemExit(f"{name}: MedFlow decodes it, no reference tool does")
    values = reference[0]
    if values.shape != ours.shape:
        raise SystemExit(f"{name}: shape {ours.shape}, reference {values.shape}")
    difference = int(np.abs(values.astype(np.float64) - ours.astype(np.float64)).max())
    if difference and (syntax not in LOSSY or difference > LOSSY_TOLERANCE):
        raise SystemExit(f"{name}: differs from the reference by up to {difference}")
    if difference:
        row |= {"matched_decoder_sha256": checksum(ours), "max_difference": difference}
    return row


def main() -> int:
    warnings.simplefilter("ignore")
    config.settings.reading_validation_mode = config.IGNORE
    rows = []
    for name, path in installed_dicom_files():
        rows.append(record_row(name, path))
        print(json.dumps(rows[-1]))
    table = {
        "source": (
            f"pydicom {pydicom.__version__} wheel (data/test_files), "
            f"pydicom-data {version('pydicom-data')}, deid-data {version('deid-data')}"
        ),
        "lossy_tolerance": LOSSY_TOLERANCE,
        "files": rows,
    }
    REFERENCE_FILE.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
