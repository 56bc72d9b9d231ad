"""The real DICOM files that Python packages ship for testing, as installed: no downloads.

Three collections, each a package of the dev extras: pydicom's own test files (in its wheel),
``pydicom-data`` (the larger files pydicom's data manager would otherwise fetch: MR, CT, US,
RG, JPEG 2000 and overlay cases) and ``deid-data`` (pydicom/deid's CT, ultrasound and "cookie"
images). A file is named ``<collection>/<path inside it>`` in the golden table.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import data_store
import deid_data
import pydicom

from pipeline.errors import ImageError
from pipeline.sniff import sniff_format


def collections() -> dict[str, Path]:
    """Collection name -> its folder in site-packages."""
    return {
        "pydicom": Path(pydicom.__file__).parent / "data" / "test_files",
        "pydicom-data": Path(data_store.__file__).parent / "data",
        "deid-data": Path(deid_data.__file__).parent / "data",
    }


def locate(name: str) -> Path:
    """The installed path of a table name such as ``pydicom-data/RG1_J2KR.dcm``."""
    collection, _, inside = name.partition("/")
    return collections()[collection] / inside


def installed_dicom_files() -> Iterator[tuple[str, Path]]:
    """(table name, path) of every file judged DICOM by its content, in a stable order."""
    for collection, root in collections().items():
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            if _is_dicom(path.read_bytes()):
                yield f"{collection}/{path.relative_to(root)}", path


def _is_dicom(data: bytes) -> bool:
    try:
        return sniff_format(data).name == "DICOM"
    except ImageError:
        return False
