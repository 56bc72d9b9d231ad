"""DICOM header text reaches facts and error messages only from allow-lists (issue 9).

Before, any 16 upper-case characters in Modality (a name fits) went into the result's facts,
and an unknown transfer syntax UID under the DICOM root was printed in the error message.
"""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.encaps import encapsulate

from pipeline.decode import decode_image
from pipeline.errors import ErrorCode, ImageError
from pipeline.limits import ImageLimits
from tests.unit.pipeline.test_dicom_golden import dicom_file

PIXELS = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 4096).astype(np.uint16)


MPEG2 = "1.2.840.10008.1.2.4.100"


def encapsulated(syntax: str) -> bytes:
    """An encapsulated file whose Transfer Syntax UID is ``syntax`` (23 characters, as MPEG2's:
    pydicom writes only registered syntaxes, so the UID is swapped in the bytes)."""
    data = dicom_file(PIXELS, syntax=MPEG2, pixel_data=encapsulate([bytes(64)]))
    assert len(syntax) == len(MPEG2) and data.count(MPEG2.encode()) == 1
    return data.replace(MPEG2.encode(), syntax.encode())


def facts(**elements: object) -> dict[str, object]:
    return dict(decode_image(dicom_file(PIXELS, **elements), ImageLimits()).facts)


@pytest.mark.parametrize(("modality", "kept"), [("CR", "CR"), ("DX", "DX"), ("MG", "MG")])
def test_a_defined_modality_is_kept(modality: str, kept: str) -> None:
    assert facts(Modality=modality)["modality"] == kept


@pytest.mark.parametrize("modality", ["JOHN DOE", "SMITH", "AB12 CD"])
def test_any_other_modality_text_is_not(modality: str) -> None:
    found = facts(Modality=modality)
    assert found["modality"] == "(unrecognised)"
    assert modality not in str(found)


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.4.999", "1.2.840.10008.1.2.9.123"])
def test_an_unregistered_transfer_syntax_uid_is_not_printed(syntax: str) -> None:
    with pytest.raises(ImageError) as error:
        decode_image(encapsulated(syntax), ImageLimits())
    assert error.value.code == ErrorCode.DICOM_UNSUPPORTED_TRANSFER_SYNTAX
    assert syntax not in str(error.value) and "unrecognised transfer syntax" in str(error.value)


def test_a_registered_unsupported_syntax_is_named() -> None:
    with pytest.raises(ImageError) as error:
        decode_image(encapsulated(MPEG2), ImageLimits())
    assert "MPEG2" in str(error.value)
