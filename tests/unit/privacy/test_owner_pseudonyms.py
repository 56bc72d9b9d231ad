"""privacy.pseudonym.for_owner: one owner's pseudonyms say nothing about another's."""

from __future__ import annotations

from privacy.pseudonym import for_owner, pseudonymize

SECRET = "s" * 40


def test_owners_get_unrelated_pseudonyms_and_other_facts_stay() -> None:
    facts = {**pseudonymize({"patient_id": "PAT-1", "study_uid": "1.2.3"}, SECRET), "mode": "L"}
    a, b = for_owner(facts, SECRET, 1), for_owner(facts, SECRET, 2)
    assert a == for_owner(facts, SECRET, 1)  # stable
    assert a["mode"] == b["mode"] == "L"
    for name in ("patient_pseudonym", "study_pseudonym"):
        assert len({facts[name], a[name], b[name]}) == 3
        assert len(a[name]) == 32
    assert for_owner(facts, "t" * 40, 1) != a  # and keyed by the secret
