"""``tiny``: a few-op model for fast tests (conv 3x3 x4, ReLU, global average pool, Gemm to 3).

Untrained, deterministic weights; its three labels "A", "B", "C" mean nothing.
"""

from __future__ import annotations

import numpy as np

from models.build.graph import BuiltModel, GraphBuilder, he_normal
from pipeline.card import InputSpec, ModelCard, OutputSpec, PreprocessSpec

NAME = "tiny"
VERSION = "1"
SEED = 7
SIZE = 64
LABELS = ("A", "B", "C")
DESCRIPTION = (
    "UNTRAINED test model: 64x64 grey input, conv 3x3 (4 channels), ReLU, global average pool, "
    "Gemm to 3 labels. Deterministic weights; fast, meaningless scores for tests."
)


def build() -> BuiltModel:
    g = GraphBuilder(NAME, seed=SEED)
    x = g.input("input", (1, SIZE, SIZE))
    bias = g.rng.standard_normal(4, dtype=np.float32) * np.float32(0.1)
    x = g.relu(g.conv(x, he_normal(g.rng, (4, 1, 3, 3)), bias))
    x = g.flatten(g.global_avgpool(x))
    weight = g.rng.standard_normal((len(LABELS), 4), dtype=np.float32)
    logits = g.gemm(x, weight, np.zeros(len(LABELS), dtype=np.float32))
    card = ModelCard(
        name=NAME,
        version=VERSION,
        description=DESCRIPTION,
        input=InputSpec(name="input", layout="NCHW", channels=1, height=SIZE, width=SIZE),
        preprocess=PreprocessSpec(
            resize="stretch", percentiles=(0.5, 99.5), mean=(0.5,), std=(0.25,)
        ),
        output=OutputSpec(
            name="logits",
            activation="sigmoid",
            labels=LABELS,
            thresholds=dict.fromkeys(LABELS, 0.5),
        ),
        batch_size=8,
        sha256="0" * 64,
        trained=False,
        intended_use="demo",  # not for clinical use: see models/README.md
        extra={"macs": g.macs, "flops": 2 * g.macs, "params": g.params, "seed": SEED},
    )
    return BuiltModel(model=g.model(logits, "logits", DESCRIPTION), card=card)
