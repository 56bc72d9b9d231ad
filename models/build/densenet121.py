"""``chest-xray-densenet121``: the CheXNet layout with UNTRAINED, deterministic weights.

DenseNet-121 (Huang et al. 2017) as in torchvision and CheXNet (Rajpurkar et al. 2017): growth
32, blocks (6, 12, 24, 16), bottleneck 4 x growth, compression 0.5, a 7x7/2 stem conv + BN + ReLU
+ 3x3/2 max pool, dense layers BN-ReLU-conv1x1-BN-ReLU-conv3x3 whose outputs are concatenated,
transitions BN-ReLU-conv1x1-avgpool 2x2, a final BN + ReLU, global average pool and a Linear
layer to the 14 ChestX-ray14 labels. Convolutions have no bias, as in torchvision.

The graph is what a torch export of CheXNet looks like (BatchNormalization nodes kept, ONNX
Runtime fuses the ones that follow a conv), so its cost is the real one: about 2.9 G
multiply-accumulates and 7.0 M parameters per 224x224 image.

Weights: He-normal convs from one seeded numpy Generator, BN with running mean 0 and variance 1
and gamma/beta close to 1/0. He scaling keeps the second moment of each new feature map close
to that of its input through the 120 conv layers, so activations stay finite; the classifier is
scaled so the logits land around +-1 (sigmoid not saturated). The scores mean nothing.
"""

from __future__ import annotations

import numpy as np

from models.build.graph import BuiltModel, GraphBuilder, he_normal
from pipeline.card import InputSpec, ModelCard, OutputSpec, PreprocessSpec

NAME = "chest-xray-densenet121"
VERSION = "1"
SEED = 121
LABELS = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
GROWTH = 32
BLOCKS = (6, 12, 24, 16)
BN_SIZE = 4
STEM = 64
SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

DESCRIPTION = (
    "UNTRAINED. DenseNet-121 in the CheXNet layout (14 ChestX-ray14 labels, 224x224 RGB, "
    "ImageNet normalisation) with deterministic pseudo-random weights, bundled only so that "
    "the pipeline and the benchmark pay the realistic compute cost of a chest X-ray classifier "
    "(~2.9 GMAC per image). Its scores mean nothing clinically; never use them."
)


def build() -> BuiltModel:
    g = GraphBuilder(NAME, seed=SEED)
    x = g.input("input", (3, SIZE, SIZE))
    x = g.conv(x, he_normal(g.rng, (STEM, 3, 7, 7)), stride=2, pads=(3, 3, 3, 3))
    x = g.maxpool(g.relu(_bn(g, x)), kernel=3, stride=2, pad=1)
    for index, layers in enumerate(BLOCKS):
        x = _dense_block(g, x, layers)
        if index < len(BLOCKS) - 1:
            x = _transition(g, x)
    x = g.flatten(g.global_avgpool(g.relu(_bn(g, x))))
    features = g.shapes[x][0]
    # The pooled features average ~0.4: weights of std 0.5/sqrt(features) and a bias of -1 keep
    # the logits near -1 (-1.7 to -0.4 measured on synthetic X-rays), far from saturation.
    weight = g.rng.standard_normal((len(LABELS), features), dtype=np.float32)
    weight *= np.float32(0.5 / np.sqrt(features))
    bias = np.full(len(LABELS), -1.0, dtype=np.float32)
    logits = g.gemm(x, weight, bias)
    model = g.model(logits, "logits", DESCRIPTION)
    return BuiltModel(model=model, card=_card(g))


def _bn(g: GraphBuilder, x: str) -> str:
    channels = g.shapes[x][0]
    scale = g.rng.uniform(0.9, 1.1, channels).astype(np.float32)
    shift = (g.rng.standard_normal(channels, dtype=np.float32) * np.float32(0.02)).astype(
        np.float32
    )
    mean = np.zeros(channels, dtype=np.float32)
    var = np.ones(channels, dtype=np.float32)
    return g.batchnorm(x, scale, shift, mean, var)


def _dense_layer(g: GraphBuilder, x: str) -> str:
    channels = g.shapes[x][0]
    y = g.conv(g.relu(_bn(g, x)), he_normal(g.rng, (BN_SIZE * GROWTH, channels, 1, 1)))
    return g.conv(g.relu(_bn(g, y)), he_normal(g.rng, (GROWTH, BN_SIZE * GROWTH, 3, 3)))


def _dense_block(g: GraphBuilder, x: str, layers: int) -> str:
    features = [x]
    for _ in range(layers):
        joined = features[0] if len(features) == 1 else g.concat(features)
        features.append(_dense_layer(g, joined))
    return g.concat(features)


def _transition(g: GraphBuilder, x: str) -> str:
    channels = g.shapes[x][0]
    y = g.conv(g.relu(_bn(g, x)), he_normal(g.rng, (channels // 2, channels, 1, 1)))
    return g.avgpool(y, kernel=2, stride=2)


def _card(g: GraphBuilder) -> ModelCard:
    return ModelCard(
        name=NAME,
        version=VERSION,
        description=DESCRIPTION,
        input=InputSpec(name="input", layout="NCHW", channels=3, height=SIZE, width=SIZE),
        preprocess=PreprocessSpec(
            resize="stretch",
            percentiles=(0.5, 99.5),
            mean=IMAGENET_MEAN,
            std=IMAGENET_STD,
            # Reduced JPEG 2000 decoding moved no score by more than 0.003 on the generator's
            # images (tests/unit/models/test_reduced_jpeg2000.py proves this bound).
            reduced_jpeg2000_tolerance=0.01,
        ),
        output=OutputSpec(
            name="logits",
            activation="sigmoid",
            labels=LABELS,
            thresholds=dict.fromkeys(LABELS, 0.5),
        ),
        batch_size=1,
        sha256="0" * 64,
        trained=False,
        intended_use="demo",  # not for clinical use: see models/README.md
        extra={
            "architecture": "densenet121 (CheXNet layout)",
            "macs": g.macs,
            "flops": 2 * g.macs,
            "params": g.params,
            "seed": SEED,
            "weights": "untrained, deterministic He-normal",
        },
    )
