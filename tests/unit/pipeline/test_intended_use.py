"""The model card's intended use (issue 9): validated, "research" when a card does not say."""

from __future__ import annotations

import json

import pytest

from models.build import build_models
from pipeline.card import INTENDED_USES, ModelCard
from pipeline.errors import ModelError
from tests.unit.pipeline.model_factory import card_for


def test_intended_use_is_one_of_three_and_defaults_to_research() -> None:
    data = card_for().to_dict()
    del data["intended_use"]
    assert ModelCard.from_dict(data).intended_use == "research"
    for use in INTENDED_USES:
        assert ModelCard.from_dict({**data, "intended_use": use}).intended_use == use
    with pytest.raises(ModelError, match="intended_use"):
        ModelCard.from_dict({**data, "intended_use": "diagnostic"})


def test_the_bundled_models_are_demos(tmp_path) -> None:
    # Untrained (densenet, tiny) or designed for synthetic images only (nodule-detector).
    list(build_models(tmp_path, ["tiny"]))
    card = json.loads((tmp_path / "tiny" / "1" / "model.json").read_text())
    assert card["intended_use"] == "demo"
