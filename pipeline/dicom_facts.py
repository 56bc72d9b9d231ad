"""What a DICOM header may tell beyond its pixels: PHI-free facts, and identifiers to pseudonymise.

Facts go into result rows and metrics, so they are structural only (syntax, bits, a Modality
from the standard's Defined Terms), never free text. Identifiers are returned raw for the
worker to replace with keyed pseudonyms; they are never logged or stored as they are.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

# Modality's Defined Terms (PS3.3 C.7.3.1.1.1, current and retired). Only these are kept: a
# code string can still be any 16 upper-case characters, a name among them (issue 9).
MODALITIES = frozenset(
    """AR ASMT AU BDUS BI BMD CD CF CP CR CS CT CTPROTOCOL DD DF DG DM DOC DS DX EC ECG EPS ES
    FA FID FS GM HC HD IO IOL IVOCT IVUS KER KO LEN LP LS MA MG MR MS M3D NM OAM OCT OP OPM
    OPR OPT OPTBSV OPTENF OPV OSS OT PLAN POS PR PT PX REG RESP RF RG RTDOSE RTIMAGE RTINTENT
    RTPLAN RTRAD RTRECORD RTSEGANN RTSTRUCT RWV SEG SM SMR SR SRF ST STAIN TEXTUREMAP TG US VA
    VF XA XAPROTOCOL XC""".split()  # noqa: SIM905 (the standard's table, as printed)
)
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
    if modality:  # a Defined Term, never free text
        facts["modality"] = modality if modality in MODALITIES else "(unrecognised)"
    if tables:
        facts["lookup_tables"] = "+".join(tables)
    if excess:
        facts["pixel_data_excess_bytes"] = excess
    return facts


def raw_identifiers(header: Dataset) -> dict[str, str]:
    found = {name: str(header.get(key, "") or "").strip() for name, key in _IDENTIFIERS.items()}
    return {name: value for name, value in found.items() if value}
