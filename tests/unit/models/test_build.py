"""The bundled models: deterministic bytes, valid graphs and cards, and a detector that works."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx.reference import ReferenceEvaluator

from models.build import BUILDERS, build_models
from models.build.__main__ import main
from models.build.graph import sha256_hex
from pipeline.card import ModelCard


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    build_models(root)
    return root


@pytest.fixture(scope="module")
def cards(repo: Path) -> dict[str, ModelCard]:
    return {name: _card(repo, name) for name in BUILDERS}


def _card(root: Path, name: str) -> ModelCard:
    return ModelCard.from_dict(json.loads((root / name / "1" / "model.json").read_text()))


def _session(root: Path, name: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    path = str(root / name / "1" / "model.onnx")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


# -- every model ---------------------------------------------------------------------------------


def test_two_builds_give_identical_bytes(repo: Path, tmp_path: Path) -> None:
    again = {w.card.name: w.card.sha256 for w in build_models(tmp_path)}
    for name in BUILDERS:
        first = (repo / name / "1" / "model.onnx").read_bytes()
        assert sha256_hex(first) == again[name], name
        assert (repo / name / "1" / "model.json").read_bytes() == (
            tmp_path / name / "1" / "model.json"
        ).read_bytes()


def test_rebuild_leaves_identical_files_alone(tmp_path: Path) -> None:
    build_models(tmp_path, ["tiny"])
    path = tmp_path / "tiny" / "1" / "model.onnx"
    before = path.stat().st_mtime_ns
    build_models(tmp_path, ["tiny"])
    assert path.stat().st_mtime_ns == before


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_card_matches_model(repo: Path, cards: dict[str, ModelCard], name: str) -> None:
    card = cards[name]
    data = (repo / name / "1" / "model.onnx").read_bytes()
    assert card.sha256 == sha256_hex(data)
    assert (card.name, card.version) == (name, "1")
    model = onnx.load_from_string(data)
    onnx.checker.check_model(model, full_check=True)
    (graph_input,) = model.graph.input
    (graph_output,) = model.graph.output
    assert graph_input.name == card.input.name
    assert graph_output.name == card.output.name
    assert model.producer_name == "medflow-models"
    assert not card.trained
    assert card.extra["macs"] > 0


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_output_shape_matches_card_for_any_batch(
    repo: Path, cards: dict[str, ModelCard], name: str
) -> None:
    card = cards[name]
    session = _session(repo, name)
    rng = np.random.default_rng(0)
    for batch in (1, 3):
        shape = (batch, card.input.channels, card.input.height, card.input.width)
        (out,) = session.run(None, {card.input.name: rng.random(shape, dtype=np.float32)})
        assert out.shape == (batch, len(card.output.labels))
        assert np.isfinite(out).all()


def test_command_line_prints_each_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(tmp_path), "--only", "tiny"]) == 0
    name, version, sha, size, _ = capsys.readouterr().out.strip().split("\t")
    assert (name, version) == ("tiny", "1")
    assert sha == _card(tmp_path, "tiny").sha256
    assert int(size) == (tmp_path / "tiny" / "1" / "model.onnx").stat().st_size


# -- chest-xray-densenet121 ----------------------------------------------------------------------


def test_densenet_has_the_chexnet_shape(cards: dict[str, ModelCard]) -> None:
    card = cards["chest-xray-densenet121"]
    assert 6.9e6 < card.extra["params"] < 8.1e6  # CheXNet: 6.97 M (7.98 M with ImageNet's head)
    assert 2.7e9 < card.extra["macs"] < 3.0e9
    assert len(card.output.labels) == 14 and card.output.labels[-1] == "Hernia"
    assert (card.input.channels, card.input.height, card.batch_size) == (3, 224, 1)
    assert "UNTRAINED" in card.description


def test_densenet_scores_are_not_saturated(repo: Path) -> None:
    x = np.random.default_rng(1).standard_normal((2, 3, 224, 224), dtype=np.float32)
    (logits,) = _session(repo, "chest-xray-densenet121").run(None, {"input": x})
    assert (np.abs(logits) < 5).all()


# -- tiny ----------------------------------------------------------------------------------------


def test_tiny_agrees_with_the_reference_evaluator(repo: Path) -> None:
    path = repo / "tiny" / "1" / "model.onnx"
    x = np.random.default_rng(2).random((8, 1, 64, 64), dtype=np.float32)
    (expected,) = ReferenceEvaluator(str(path)).run(None, {"input": x})
    (actual,) = _session(repo, "tiny").run(None, {"input": x})
    np.testing.assert_allclose(actual, np.asarray(expected), rtol=1e-4, atol=1e-5)


# -- nodule-detector -----------------------------------------------------------------------------


def _auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Mann-Whitney estimate of the ROC AUC (ties count one half)."""
    greater = (positive[:, None] > negative[None, :]).mean()
    return float(greater + 0.5 * (positive[:, None] == negative[None, :]).mean())


def _detect(session: ort.InferenceSession, images: list[np.ndarray]) -> np.ndarray:
    batch = np.stack(images)[:, None].astype(np.float32)
    return np.concatenate([session.run(None, {"input": x[None]})[0][:, 0] for x in batch])


def test_detector_separates_nodules_from_anatomy(repo: Path) -> None:
    session = _session(repo, "nodule-detector")
    rng = np.random.default_rng(2024)
    negative = _detect(session, [_make_chest(rng) for _ in range(50)])
    positive = _detect(session, [_make_chest(rng, int(rng.integers(1, 4))) for _ in range(50)])
    assert _auc(positive, negative) >= 0.95
    assert (_sigmoid(negative) < 0.5).mean() >= 0.95  # the card's threshold


def test_detector_finds_the_weakest_isolated_nodule(repo: Path) -> None:
    image = np.full((256, 256), 0.2, dtype=np.float32)
    yy, xx = np.mgrid[0:256, 0:256]
    image += 0.12 * np.exp(-((yy - 128.0) ** 2 + (xx - 100.0) ** 2) / (2 * 3.2**2))
    (logit,) = _detect(_session(repo, "nodule-detector"), [image])
    assert _sigmoid(logit) > 0.8


def test_detector_ignores_ribs(repo: Path) -> None:
    """Rib bands (ending bluntly in mid-lung here) on a flat lung: far below the weakest nodule."""
    session = _session(repo, "nodule-detector")
    rng = np.random.default_rng(7)
    ribs_only = np.full((256, 256), 0.2) + _ribs(rng, np.ones((256, 256)))
    ribs_only += rng.normal(0, 0.01, ribs_only.shape)
    (logit,) = _detect(session, [ribs_only.astype(np.float32)])
    assert logit < -2.0  # the weakest nodule is at +2.5


def test_detector_on_the_benchmark_generator(repo: Path) -> None:
    synthetic = pytest.importorskip("bench.synthetic")
    session = _session(repo, "nodule-detector")
    scores = {
        flag: _detect(
            session, [synthetic.render_chest(11, i, 256, 256, flag)[0] for i in range(30)]
        )
        for flag in (True, False)
    }
    assert _auc(scores[True], scores[False]) >= 0.95


# -- a private chest X-ray maker, written from the nodule specification -----------------------


HEART = (0.57, 0.7, 0.15, 0.12)  # centre and semi-axes, fractions of the size


def _make_chest(rng: np.random.Generator, nodules: int = 0, size: int = 256) -> np.ndarray:
    """A display image on [0, 1]: body, two dark lungs, mediastinum, heart, ribs, noise, nodules.

    Nodules are 2.5-4 % of the width in radius and +0.12 to +0.30 in contrast, either a disc with
    a soft edge or a Gaussian bump of standard deviation r / 2 (harder than a disc), fully inside
    a lung field and off the heart shadow (they may touch the lung's edge, which the benchmark's
    generator never lets them do).
    """
    c = (np.arange(size) + 0.5) / size
    xx, yy = np.meshgrid(c, c)
    body = _inside(_rho(xx, yy, 0.5 + rng.uniform(-0.02, 0.02), 0.56, 0.46, 0.55), 0.02)
    img = 0.05 + 0.5 * body
    lungs = []
    for side in (-1, 1):
        lung = (
            0.5 + side * rng.uniform(0.2, 0.23),
            rng.uniform(0.43, 0.47),
            rng.uniform(0.13, 0.16),
            rng.uniform(0.28, 0.32),
        )
        lungs.append(lung)
        img -= rng.uniform(0.3, 0.4) * _inside(_rho(xx, yy, *lung), 0.03)
    img += 0.15 * _inside(np.abs(xx - 0.5) / 0.06, 0.1) * body
    img += 0.25 * _inside(_rho(xx, yy, *HEART), 0.04)
    img += _ribs(rng, body)
    a, b, q = rng.uniform(-0.06, 0.06, 3)
    img += a * (xx - 0.5) + b * (yy - 0.5) + q * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2)
    for _ in range(nodules):
        img += _nodule(rng, xx, yy, lungs[rng.integers(2)])
    img += rng.normal(0, rng.uniform(0.01, 0.02), img.shape)
    return np.clip(img, 0, 1).astype(np.float32)


def _ribs(rng: np.random.Generator, body: np.ndarray) -> np.ndarray:
    """8-11 curved bands per side, 1.5-2.5 % of the width thick (FWHM), contrast 0.08-0.15."""
    size = body.shape[0]
    c = (np.arange(size) + 0.5) / size
    xx, yy = np.meshgrid(c, c)
    out = np.zeros_like(body)
    for side in (-1, 1):
        d = np.clip(side * (xx - 0.5), 0, None)
        bend = -0.5 * d + 1.1 * d**2  # centre line y = y0 + bend, falling laterally
        across = 1 / np.sqrt(1 + (2.2 * d - 0.5) ** 2)  # vertical -> perpendicular distance
        where = body * (d > 0.05)
        for y0 in np.linspace(0.12, 0.78, rng.integers(8, 12)) + rng.uniform(-0.01, 0.01):
            s = rng.uniform(0.015, 0.025) / 2.355
            rows = slice(max(0, int((y0 - 0.06 - 4 * s) * size)), int((y0 + 0.03 + 4 * s) * size))
            dist = (yy[rows] - y0 - bend[rows]) * across[rows]
            out[rows] += rng.uniform(0.08, 0.15) * np.exp(-(dist**2) / (2 * s * s)) * where[rows]
    return out


def _nodule(
    rng: np.random.Generator, xx: np.ndarray, yy: np.ndarray, lung: tuple[float, ...]
) -> np.ndarray:
    cx, cy, ax, ay = lung
    r = rng.uniform(0.025, 0.04)
    while True:
        px, py = cx + rng.uniform(-1, 1) * (ax - r), cy + rng.uniform(-1, 1) * (ay - r)
        in_lung = _rho(px, py, cx, cy, ax - r - 0.01, ay - r - 0.01) <= 1
        if in_lung and _rho(px, py, *HEART[:2], HEART[2] + r, HEART[3] + r) > 1:
            break
    rho = np.hypot(xx - px, yy - py)
    if rng.random() < 0.5:
        blob = 1.0 / (1.0 + np.exp((rho - r) / (0.15 * r)))
    else:
        blob = np.exp(-(rho**2) / (2 * (r / 2) ** 2))
    return rng.uniform(0.12, 0.30) * blob


def _rho(x, y, cx: float, cy: float, ax: float, ay: float) -> np.ndarray:
    return np.sqrt(((x - cx) / ax) ** 2 + ((y - cy) / ay) ** 2)


def _inside(rho: np.ndarray, edge: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp((rho - 1.0) / edge))
