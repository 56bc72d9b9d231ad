"""What a DICOM header may tell beyond its pixels: PHI-free facts, and identifiers to pseudonymise.

Facts go into result rows and metrics, so they are structural only (syntax, bits, a Modality
code string), never free text. Identifiers are returned raw for the worker to replace with
keyed pseudonyms; they are never logged or stored as they are.
"""

from __future__ import annotations

import re

from pydicom.dataset import Dataset

_CODE_STRING = re.compile(r"[A-Z0-9_ ]{1,16}")  # the CS VR's repertoire (PS3.5 6.2)
_IDENTIFIERS = {
    "patient_id": "PatientID",
    "study_uid": "StudyInstanceUID",
    "sop_uid": "SOPInstanceUID",
}


def image_facts(
    header: Dataset, geometry: dict[str, int | str], syntax: str, tables: list[str], excess: int
) -> dict[str, str | int | float]:
    facts: dict[str, str | int | float] = {
        "transfer_syntax": str(syntax),
        "photometric": geometry["photometric_interpretation"],
        "bits_allocated": geometry["bits_allocated"],
        "bits_stored": geometry["bits_stored"],
        "pixel_representation": geometry["pixel_representation"],
        "samples_per_pixel": geometry["samples_per_pixel"],
    }
    modality = str(header.get("Modality", "")).strip()
    if _CODE_STRING.fullmatch(modality):  # a code string, never free text
        facts["modality"] = modality
    if tables:
        facts["lookup_tables"] = "+".join(tables)
    if excess:
        facts["pixel_data_excess_bytes"] = excess
    return facts


def raw_identifiers(header: Dataset) -> dict[str, str]:
    found = {name: str(header.get(key, "") or "").strip() for name, key in _IDENTIFIERS.items()}
    return {name: value for name, value in found.items() if value}
