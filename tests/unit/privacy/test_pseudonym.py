"""Keyed pseudonyms: deterministic per secret, different per secret and per field."""

from __future__ import annotations

import hashlib

import pytest

from privacy.pseudonym import pseudonymize

IDS = {"patient_id": "PAT-001", "study_uid": "1.2.3.4.5.6", "sop_uid": "1.2.3.4.5.6.7"}


def test_deterministic_for_one_secret() -> None:
    first = pseudonymize(IDS, "s3cret")
    assert first == pseudonymize(dict(IDS), "s3cret")
    assert set(first) == {"patient_pseudonym", "study_pseudonym", "instance_pseudonym"}
    assert all(len(v) == 32 and int(v, 16) >= 0 for v in first.values())


def test_keyed_other_secret_other_pseudonyms() -> None:
    a, b = pseudonymize(IDS, "secret-a"), pseudonymize(IDS, "secret-b")
    assert all(a[k] != b[k] for k in a)


def test_not_a_plain_hash_of_the_id() -> None:
    plain = hashlib.sha256(IDS["patient_id"].encode()).hexdigest()[:32]
    assert pseudonymize(IDS, "s")["patient_pseudonym"] != plain


def test_domain_separated_per_field() -> None:
    same = {"patient_id": "X", "study_uid": "X", "sop_uid": "X"}
    assert len(set(pseudonymize(same, "s").values())) == 3


def test_dicom_padding_ignored_and_empty_or_unknown_dropped() -> None:
    padded = {"patient_id": "PAT-001 ", "study_uid": "1.2.3.4.5.6\x00", "sop_uid": ""}
    got = pseudonymize({**padded, "patient_name": "DOE^JOHN"}, "s")
    want = pseudonymize(IDS, "s")
    assert got == {k: want[k] for k in ("patient_pseudonym", "study_pseudonym")}


def test_raw_values_never_echoed() -> None:
    out = pseudonymize(IDS, "s")
    assert not set(out.values()) & set(IDS.values())


def test_empty_secret_refused() -> None:
    with pytest.raises(ValueError):
        pseudonymize(IDS, "")
