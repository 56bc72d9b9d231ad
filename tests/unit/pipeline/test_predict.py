"""The predictor: per-image failures stay per image, order is kept, timings are filled."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import pipeline.predict as predict_module
from pipeline.decode import decode_image
from pipeline.errors import ErrorCode
from pipeline.image import DecodedImage
from pipeline.postprocess import scores_from_logits
from pipeline.predict import INTERNAL_MESSAGE, Predictor
from pipeline.preprocess import preprocess
from pipeline.repository import LoadedModel, ModelRepository
from tests.unit.pipeline.images import BROKEN, png_bytes
from tests.unit.pipeline.model_factory import card_for, evaluate, linear_graph, write_model


@pytest.fixture
def model(tmp_path: Path) -> LoadedModel:
    write_model(tmp_path, linear_graph(("N", 1, 16, 16)), card_for(batch_size=4))
    return ModelRepository(tmp_path).load("linear")


def mixed_items() -> list[tuple[str, bytes]]:
    """10 images (batch size 4 does not divide them), three of them broken."""
    good = [(f"good-{i}.png", png_bytes(seed=i)) for i in range(7)]
    truncated = png_bytes(seed=99)[:300]
    bad = [
        ("empty.png", BROKEN["EMPTY_FILE"]),
        ("text.png", BROKEN["UNKNOWN_FORMAT"]),
        ("truncated.png", truncated),
    ]
    return good[:2] + bad[:1] + good[2:5] + bad[1:2] + good[5:] + bad[2:]


def expected_scores(model: LoadedModel, data: bytes) -> dict[str, float]:
    """The same image through decode, preprocess and onnx's reference evaluator."""
    card = model.card
    tensor = preprocess(decode_image(data), card)
    raw = evaluate(model.path, tensor[None])
    return scores_from_logits(raw, card.output)[0]


def test_broken_images_fail_alone_and_order_is_kept(model: LoadedModel) -> None:
    items = mixed_items()
    results = Predictor(model).predict(items)
    assert [r.ref for r in results] == [ref for ref, _ in items]
    failed = {r.ref: r.error_code for r in results if r.status == "failed"}
    assert failed["empty.png"] == "EMPTY_FILE"
    assert failed["text.png"] == "UNKNOWN_FORMAT"
    assert failed["truncated.png"] in ("TRUNCATED_FILE", "CORRUPT_IMAGE")
    assert len(failed) == 3
    for (ref, data), result in zip(items, results, strict=True):
        if ref.startswith("good"):
            assert result.status == "ok" and result.error_code is None
            assert result.scores == pytest.approx(expected_scores(model, data), abs=1e-5)


def test_batching_does_not_change_scores(model: LoadedModel) -> None:
    predictor = Predictor(model)
    items = [(f"{i}", png_bytes(seed=i)) for i in range(6)]
    together = predictor.predict(items)
    alone = [predictor.predict_one(ref, data) for ref, data in items]
    for a, b in zip(together, alone, strict=True):
        assert a.scores == pytest.approx(b.scores, abs=1e-6)
        assert a.positive == b.positive


def test_results_carry_timings_and_facts(model: LoadedModel) -> None:
    ok, failed = Predictor(model).predict([("a.png", png_bytes(120, 90)), ("b", b"")])
    assert ok.status == "ok" and ok.format == "png" and (ok.width, ok.height) == (90, 120)
    assert set(ok.timings_ms) == {"decode", "preprocess", "inference", "total"}
    assert all(v >= 0 for v in ok.timings_ms.values())
    stages = ok.timings_ms["decode"] + ok.timings_ms["preprocess"] + ok.timings_ms["inference"]
    assert ok.timings_ms["total"] >= stages - 0.01
    assert ok.sha256 is not None and len(ok.sha256) == 64
    assert set(ok.scores) == set(model.card.output.labels)
    assert ok.positive == [k for k, v in ok.scores.items() if v >= model.card.output.threshold(k)]
    assert failed.status == "failed" and "total" in failed.timings_ms
    json.dumps(ok.to_dict())  # plain JSON data


def test_hashing_can_be_left_to_the_caller(model: LoadedModel) -> None:
    result = Predictor(model, hash_images=False).predict_one("a", png_bytes())
    assert result.status == "ok" and result.sha256 is None


def test_unexpected_exception_is_an_internal_error(
    model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = predict_module.preprocess

    def flaky(image: DecodedImage, *args: object, **kwargs: object) -> np.ndarray:
        if image.width == 99:
            raise RuntimeError("secret header value 'DOE^JOHN'")
        return real(image, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(predict_module, "preprocess", flaky)
    items = [("a", png_bytes(seed=1)), ("b", png_bytes(100, 99)), ("c", png_bytes(seed=2))]
    a, b, c = Predictor(model).predict(items)
    assert (a.status, c.status) == ("ok", "ok")
    assert b.error_code == "INTERNAL_ERROR" and b.error_message == INTERNAL_MESSAGE
    assert "DOE" not in json.dumps(b.to_dict())


def test_inference_failure_fails_only_that_batch(
    model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    predictor = Predictor(model)
    real = predictor.runner.run
    calls: list[int] = []

    def second_batch_fails(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        if len(calls) == 2:
            raise RuntimeError("onnxruntime exploded")
        return real(batch)

    monkeypatch.setattr(predictor.runner, "run", second_batch_fails)
    results = predictor.predict([(f"{i}", png_bytes(seed=i)) for i in range(10)])
    assert calls == [4, 4, 2]
    codes = [r.error_code for r in results]
    assert codes == [None] * 4 + ["INFERENCE_FAILED"] * 4 + [None] * 2
    assert all("inference" in r.timings_ms for r in results)


def test_non_finite_scores_fail_the_image(
    model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    predictor = Predictor(model)
    real = predictor.runner.run

    def nan_for_first(batch: np.ndarray) -> np.ndarray:
        raw = real(batch)
        raw[0, 1] = np.nan
        return raw

    monkeypatch.setattr(predictor.runner, "run", nan_for_first)
    first, second = predictor.predict([("a", png_bytes(seed=1)), ("b", png_bytes(seed=2))])
    assert first.error_code == ErrorCode.INFERENCE_FAILED and first.scores == {}
    assert second.status == "ok"


def with_identifiers(monkeypatch: pytest.MonkeyPatch) -> None:
    real = predict_module.decode_image

    def decode(data: bytes, *args: object, **kwargs: object) -> DecodedImage:
        image = real(data, *args, **kwargs)  # type: ignore[arg-type]
        image.identifiers = {"patient_id": "PAT-123456", "study_uid": "1.2.3.4"}
        return image

    monkeypatch.setattr(predict_module, "decode_image", decode)


def test_identifiers_never_reach_the_result(
    model: LoadedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_identifiers(monkeypatch)
    result = Predictor(model).predict_one("a", png_bytes())
    assert result.status == "ok"
    text = json.dumps(result.to_dict())
    assert "PAT-123456" not in text and "1.2.3.4" not in text


def test_pseudonymize_hook_fills_facts(model: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    with_identifiers(monkeypatch)
    seen: list[dict[str, str]] = []

    def pseudonymize(identifiers: dict[str, str]) -> dict[str, str]:
        seen.append(identifiers)
        return {"patient_pseudonym": "p-" + str(len(identifiers["patient_id"]))}

    result = Predictor(model, pseudonymize=pseudonymize).predict_one("a", png_bytes())
    assert seen == [{"patient_id": "PAT-123456", "study_uid": "1.2.3.4"}]
    assert result.facts["patient_pseudonym"] == "p-10"
    assert "PAT-123456" not in json.dumps(result.to_dict())


def test_time_limits_pass_through(model: LoadedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    class SoftTimeLimitExceeded(Exception):  # Celery's, known by name
        pass

    def interrupted(*args: object, **kwargs: object) -> np.ndarray:
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(predict_module, "preprocess", interrupted)
    with pytest.raises(SoftTimeLimitExceeded):
        Predictor(model).predict([("a", png_bytes())])
