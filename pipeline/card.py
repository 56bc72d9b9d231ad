"""The model card (`model.json`): everything needed to feed a model and read its output.

A card is parsed strictly: an unknown activation, a threshold for a label that does not exist or
a mean of the wrong length is a :class:`~pipeline.errors.ModelError` naming the field, at load
time, not a wrong score at run time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pipeline.errors import ModelError

LAYOUTS = ("NCHW", "NHWC")
RESIZES = ("stretch", "letterbox")
ACTIVATIONS = ("sigmoid", "softmax", "none")
INTENDED_USES = ("clinical", "research", "demo")


@dataclass(frozen=True)
class InputSpec:
    name: str
    layout: str  # "NCHW" or "NHWC"
    channels: int  # 1 (grey) or 3 (grey replicated, or RGB)
    height: int
    width: int


@dataclass(frozen=True)
class PreprocessSpec:
    """How stored intensities become the model's input tensor.

    ``percentiles`` is the robust window used when a DICOM file carries no VOI window (and for
    nothing else). After windowing, intensities are on [0, 1]; then ``(x - mean) / std`` per
    channel.

    ``reduced_jpeg2000_tolerance``, when set, allows JPEG 2000 frames to be decoded at a reduced
    resolution level (never below the input size; see :mod:`pipeline.j2k_reduced`): the largest
    change of any score, on [0, 1], that the model's owner accepts from it. The allowance must
    be proven on the generator's JPEG 2000 images (:mod:`pipeline.reduced_check`).
    """

    resize: str = "stretch"
    percentiles: tuple[float, float] = (0.5, 99.5)
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    reduced_jpeg2000_tolerance: float | None = None


@dataclass(frozen=True)
class OutputSpec:
    name: str
    activation: str  # "sigmoid", "softmax" or "none" (the graph already outputs probabilities)
    labels: tuple[str, ...]
    thresholds: dict[str, float] = field(default_factory=dict)  # label -> probability cut-off

    def threshold(self, label: str) -> float:
        return self.thresholds.get(label, 0.5)


@dataclass(frozen=True)
class ModelCard:
    """The model card, ``model.json``: the contract between a model's author and MedFlow.

    Everything needed to feed the model and read its output is here; nothing is guessed from
    the graph. :meth:`from_dict` parses the JSON strictly and :meth:`validate` checks the card
    on its own; the repository then checks it against ``model.onnx`` (sha256, input and output
    names and shapes), so a wrong card stops a worker before its first image.

    Attributes
    ----------
    name, version : str
        The model's reference ``name:version`` (see :attr:`ref`); they must equal the
        repository directories ``<name>/<version>/``.
    description : str
        Free text for operators (``GET /v1/models``).
    input : InputSpec
        The input tensor's ``name``, ``layout`` ("NCHW" or "NHWC"), ``channels`` (1, or 3:
        grey replicated or RGB) and ``height`` x ``width`` in pixels.
    preprocess : PreprocessSpec
        ``resize`` ("stretch" or "letterbox"), ``percentiles`` (the robust window, in percent,
        used when a DICOM file has no VOI window), then per-channel ``mean`` and ``std`` applied
        to display intensities on [0, 1] as ``(x - mean) / std``; optionally
        ``reduced_jpeg2000_tolerance`` (see :class:`PreprocessSpec`).
    output : OutputSpec
        The output tensor's ``name``, ``activation`` ("sigmoid", "softmax", or "none" when the
        graph outputs probabilities), ``labels`` in output order, and per-label
        ``thresholds`` (probability cut-offs, 0.5 when absent).
    batch_size : int
        Images per ONNX Runtime call (>= 1); about 8 suits a 2-core CPU worker.
    sha256 : str
        The sha256 of ``model.onnx``, 64 hex digits; a worker refuses a file that differs.
    trained : bool
        False for demonstration models whose scores mean nothing.
    extra : dict
        Free-form facts (FLOPs, training data, licence); never read by the pipeline.

    Examples
    --------
    A minimal ``model.json``::

        {"name": "chest", "version": "1", "sha256": "<64 hex digits>", "batch_size": 8,
         "input": {"name": "input", "layout": "NCHW", "channels": 1, "height": 224,
                   "width": 224},
         "preprocess": {"mean": [0.5], "std": [0.25]},
         "output": {"name": "logits", "activation": "sigmoid", "labels": ["effusion"]}}
    """

    name: str
    version: str
    description: str
    input: InputSpec
    preprocess: PreprocessSpec
    output: OutputSpec
    batch_size: int
    sha256: str  # of model.onnx, hex
    trained: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    # Intended use (issue 9): "clinical", "research" or "demo". Production serves only clinical
    # models unless the deployment opts in; a card that does not say is "research".
    intended_use: str = "research"

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["preprocess"]["percentiles"] = list(self.preprocess.percentiles)
        data["preprocess"]["mean"] = list(self.preprocess.mean)
        data["preprocess"]["std"] = list(self.preprocess.std)
        data["output"]["labels"] = list(self.output.labels)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        try:
            card = cls(
                name=_str(data, "name"),
                version=_str(data, "version"),
                description=str(data.get("description", "")),
                input=InputSpec(**_section(data, "input")),
                preprocess=_preprocess(_section(data, "preprocess")),
                output=_output(_section(data, "output")),
                batch_size=int(data.get("batch_size", 1)),
                sha256=_str(data, "sha256"),
                trained=bool(data.get("trained", False)),
                extra=dict(data.get("extra", {})),
                intended_use=str(data.get("intended_use", "research")),
            )
        except TypeError as exc:  # unknown or missing keys in a section
            raise ModelError(str(exc), field="model.json") from exc
        card.validate()
        return card

    def validate(self) -> None:
        """Check the card on its own; the graph is checked by the repository loader."""
        _check(self.input.layout in LAYOUTS, "input.layout", f"must be one of {LAYOUTS}")
        _check(self.input.channels in (1, 3), "input.channels", "must be 1 or 3")
        _check(self.input.height > 0 and self.input.width > 0, "input.height", "must be > 0")
        _check(self.preprocess.resize in RESIZES, "preprocess.resize", f"one of {RESIZES}")
        low, high = self.preprocess.percentiles
        _check(0 <= low < high <= 100, "preprocess.percentiles", "need 0 <= low < high <= 100")
        for name in ("mean", "std"):
            values = getattr(self.preprocess, name)
            _check(
                len(values) in (1, self.input.channels),
                f"preprocess.{name}",
                f"needs 1 or {self.input.channels} values",
            )
        _check(all(s > 0 for s in self.preprocess.std), "preprocess.std", "must be > 0")
        tolerance = self.preprocess.reduced_jpeg2000_tolerance
        _check(
            tolerance is None or 0 < tolerance <= 1,
            "preprocess.reduced_jpeg2000_tolerance",
            "must be null or in (0, 1]",
        )
        _check(self.output.activation in ACTIVATIONS, "output.activation", f"one of {ACTIVATIONS}")
        _check(len(self.output.labels) > 0, "output.labels", "must not be empty")
        _check(
            len(set(self.output.labels)) == len(self.output.labels),
            "output.labels",
            "must be unique",
        )
        unknown = set(self.output.thresholds) - set(self.output.labels)
        _check(not unknown, "output.thresholds", f"names unknown labels {sorted(unknown)}")
        _check(self.batch_size >= 1, "batch_size", "must be >= 1")
        _check(len(self.sha256) == 64, "sha256", "must be 64 hex digits")
        _check(self.intended_use in INTENDED_USES, "intended_use", f"one of {INTENDED_USES}")


def _check(ok: bool, field_name: str, message: str) -> None:
    if not ok:
        raise ModelError(message, field=field_name)


def _str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    _check(isinstance(value, str) and value != "", key, "must be a non-empty string")
    return str(value)


def _section(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    _check(isinstance(value, dict), key, "must be an object")
    return dict(value)  # type: ignore[arg-type]


def _preprocess(section: dict[str, Any]) -> PreprocessSpec:
    for key in ("percentiles", "mean", "std"):
        if key in section:
            section[key] = tuple(float(v) for v in section[key])
    if section.get("reduced_jpeg2000_tolerance") is not None:
        section["reduced_jpeg2000_tolerance"] = float(section["reduced_jpeg2000_tolerance"])
    return PreprocessSpec(**section)


def _output(section: dict[str, Any]) -> OutputSpec:
    section["labels"] = tuple(section.get("labels", ()))
    section["thresholds"] = {k: float(v) for k, v in section.get("thresholds", {}).items()}
    return OutputSpec(**section)
