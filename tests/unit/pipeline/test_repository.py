"""The model repository: version order, active version, and every card/graph mismatch."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
from onnx import TensorProto, helper

from pipeline.card import OutputSpec
from pipeline.errors import ModelError
from pipeline.repository import ModelRepository, version_key
from tests.unit.pipeline.model_factory import LABELS, card_for, linear_graph, write_model

BUNDLED = Path(__file__).resolve().parents[3] / "models"


def test_versions_order_numbers_as_numbers(tmp_path: Path) -> None:
    for version in ("10", "2", "1.10", "1.2", "1", "1.2rc1"):
        write_model(tmp_path, linear_graph(), card_for("m", version))
    repo = ModelRepository(tmp_path)
    assert repo.versions("m") == ["1", "1.2", "1.2rc1", "1.10", "2", "10"]
    assert repo.resolve("m") == ("m", "10")
    assert repo.resolve("m:1.2") == ("m", "1.2")
    assert sorted(["v2", "v10", "v1"], key=version_key) == ["v1", "v2", "v10"]


def test_active_file_overrides_the_highest_version(tmp_path: Path) -> None:
    for version in ("1", "2"):
        write_model(tmp_path, linear_graph(), card_for("m", version))
    (tmp_path / "m" / "ACTIVE").write_text("1\n")
    repo = ModelRepository(tmp_path)
    assert repo.resolve("m") == ("m", "1")
    assert repo.load("m").card.version == "1"
    (tmp_path / "m" / "ACTIVE").write_text("7")
    with pytest.raises(ModelError, match="ACTIVE names version '7'") as caught:
        repo.resolve("m")
    assert caught.value.field == "model"


def test_names_cards_and_unknown_models(tmp_path: Path) -> None:
    write_model(tmp_path, linear_graph(), card_for("alpha"))
    write_model(tmp_path, linear_graph(), card_for("beta", "3"))
    (tmp_path / "not-a-model").mkdir()
    repo = ModelRepository(tmp_path)
    assert repo.names() == ["alpha", "beta"]
    assert [card.ref for card in repo.cards()] == ["alpha:1", "beta:3"]
    for ref in ("gamma", "../alpha", "alpha/1"):
        with pytest.raises(ModelError, match="available: alpha, beta") as caught:
            repo.load(ref)
        assert caught.value.field == "model"
    with pytest.raises(ModelError, match="no version '9'") as caught:
        repo.load("beta:9")
    assert caught.value.field == "model"


def test_load_checks_and_returns_the_model(tmp_path: Path) -> None:
    path = write_model(tmp_path, linear_graph(), card_for())
    loaded = ModelRepository(tmp_path).load("linear:1")
    assert loaded.path == path
    assert loaded.sha256 == loaded.card.sha256 and len(loaded.sha256) == 64


def test_sha256_mismatch(tmp_path: Path) -> None:
    write_model(tmp_path, linear_graph(), card_for(), sha256="ab" * 32)
    with pytest.raises(ModelError, match="sha256") as caught:
        ModelRepository(tmp_path).load("linear")
    assert caught.value.field == "sha256"


def extra_input_graph() -> object:
    model = linear_graph()
    model.graph.input.append(helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1]))
    return model


MISMATCHES = {
    "input.name": (linear_graph(input_name="pixels"), card_for()),
    "input.name:dtype": (linear_graph(input_type=TensorProto.UINT8), card_for()),
    "input.name:extra input": (extra_input_graph(), card_for()),
    "input.layout:rank": (linear_graph(("N", 16, 16)), card_for()),
    "input.layout:NHWC graph": (linear_graph(("N", 16, 16, 3)), card_for(channels=3)),
    "input.channels": (linear_graph(("N", 3, 16, 16)), card_for()),
    "input.height": (linear_graph(("N", 1, 20, 16)), card_for()),
    "input.width": (linear_graph(("N", 16, 20, 1)), card_for(layout="NHWC", size=(16, 16))),
    "output.name": (linear_graph(output_name="scores"), card_for()),
    "output.labels": (linear_graph(labels=2), card_for()),
    "output.labels:rank 3 output": (linear_graph(output_dims=("N", 1, 2)), card_for()),
}


@pytest.mark.parametrize("case", list(MISMATCHES))
def test_each_mismatch_names_its_field(tmp_path: Path, case: str) -> None:
    model, card = MISMATCHES[case]
    write_model(tmp_path, model, card)  # type: ignore[arg-type]
    with pytest.raises(ModelError) as caught:
        ModelRepository(tmp_path).load("linear")
    assert caught.value.field == case.split(":")[0]


def test_static_and_symbolic_dims_that_agree_are_accepted(tmp_path: Path) -> None:
    write_model(tmp_path, linear_graph((1, 1, 16, 16)), card_for("static"))
    write_model(
        tmp_path, linear_graph(("N", 16, 16, 3)), card_for("nhwc", layout="NHWC", channels=3)
    )
    repo = ModelRepository(tmp_path)
    assert repo.load("static").card.name == "static"
    assert repo.load("nhwc").card.input.layout == "NHWC"


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ("{not json", "model.json"),
        ("[1, 2]", "model.json"),
        (None, "output.thresholds"),  # a card that fails its own validation
        ("name", "name"),
    ],
)
def test_bad_cards(tmp_path: Path, content: str | None, field: str) -> None:
    card = card_for()
    write_model(tmp_path, linear_graph(), card)
    card_file = tmp_path / "linear" / "1" / "model.json"
    if content is None:
        data = json.loads(card_file.read_text())
        data["output"]["thresholds"] = {"Pneumonia": 0.5}
        card_file.write_text(json.dumps(data))
    elif content == "name":
        card_file.write_text(json.dumps(replace(card, name="other").to_dict()))
    else:
        card_file.write_text(content)
    with pytest.raises(ModelError) as caught:
        ModelRepository(tmp_path).load("linear")
    assert caught.value.field == field


def test_unreadable_graph(tmp_path: Path) -> None:
    path = write_model(tmp_path, linear_graph(), card_for())
    path.write_bytes(b"\x00\xffnot a protobuf" * 10)
    data = json.loads((path.parent / "model.json").read_text())
    data["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (path.parent / "model.json").write_text(json.dumps(data))
    with pytest.raises(ModelError) as caught:
        ModelRepository(tmp_path).load("linear")
    assert caught.value.field == "model"


def test_labels_and_thresholds_round_trip(tmp_path: Path) -> None:
    write_model(tmp_path, linear_graph(), card_for())
    output = ModelRepository(tmp_path).load("linear").card.output
    assert output == OutputSpec("logits", "sigmoid", LABELS, {"Nodule": 0.3})


@pytest.mark.skipif(not (BUNDLED / "tiny" / "1" / "model.onnx").is_file(), reason="not built")
def test_bundled_models_load() -> None:
    repo = ModelRepository(BUNDLED)
    for name in repo.names():
        assert repo.load(name).card.name == name
