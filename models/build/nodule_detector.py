"""``nodule-detector``: an analytically designed (not trained) detector of bright round nodules.

What it looks for
-----------------
The synthetic chest X-rays (``bench/synthetic.py``) put 0 to 3 nodules in the lung fields: in the
displayed image (after windowing and MONOCHROME1 inversion, on [0, 1]) a bright, smooth, round
blob of radius r = 2.5-4 % of the width and peak contrast c = 0.12-0.30 over the local lung
background, among dark lungs, a bright body, mediastinum and heart, rib bands 1.5-2.5 % of the
width thick (contrast 0.08-0.15), smooth gradients and noise of sigma 0.01-0.02.

Input: one grey channel, 256 x 256, display intensities on [0, 1] (card mean 0, std 1). At 256 px
the smallest nodule has r = 6.4 px and the thinnest rib is 3.8 px thick, both well resolved for
the smallest filter; the larger filters run on a 2x2 average (128 px), where nodules still have
r >= 3.2 px. 128 px input would under-resolve ribs for the smallest filter; 512 px would cost 4x
for nothing (the pipeline's area reduction to 256 px already averages most noise away).

The filter (all fixed convolutions, no learned weight)
------------------------------------------------------
For a scale s (Gaussian standard deviation, in pixels of the 256 px input) the graph computes the
scale-normalised Hessian and gradient of I_s = G_s * I by separable convolutions (a column pass
with [G, G'', G'] then a row pass; reflect padding, so the image border makes no edge)::

    A = -s^2 (Ixx + Iyy) / 2,  B = s^2 (Ixx - Iyy) / 2,  C = s^2 Ixy,  g = s |grad I_s|
    R_s = A - sqrt(B^2 + C^2) - beta g  =  -s^2 lambda_max - beta g

* ``-s^2 lambda_max`` is the *smaller* downward curvature over all directions: positive only where
  the image bends down in every direction (a bright blob), exactly 0 along a straight ridge (a rib)
  or edge, negative for dark blobs. The kernels sum to zero and kill linear ramps: that is the
  local background subtraction (global brightness and smooth gradients give nothing).
* ``beta g`` (beta = 1): the centre of a symmetric blob has no gradient, but the bright side of an
  edge bends down across it with curvature / gradient = u (u = distance in blurred-edge widths),
  and along a curved edge or rib the curvature is g / rho. beta = 1 leaves at most
  c_edge max(phi(u) (u - 1)) = 0.07 c_edge on a straight edge and nothing on curves wider than
  rho = s.
* Crossings and stubs (a rib over the bright chest wall, a short rib stub between the mediastinum
  and a lung) are locally blob-like, but they sit on bright tissue that is a *ridge at a large
  scale*, which a nodule in a dark lung is not. With K = -L^2 lambda_min at L = 12 px (the
  strongest downward curvature at the large scale), ``S_s = R_s - relu(K - mu R_s)``, mu = 1.5.
  A nodule's own K is at most 0.78 R_s (a bump of width w: K / R_s = 4 w^2 L^2 / (w^2 + L^2)^2
  <= 0.78 for w <= 7.2 px), so a nodule alone is never penalised and one on the strongest rib loses
  about 0.01, while a rib over a 15 px wide chest wall of contrast 0.4 has K ~ 0.16.
* Lung-field prior: nodules lie in the lung fields (display level 0.15-0.29 in the generator,
  about 0.35 at most after a percentile window), everything else is tissue at 0.55 or more. A grey
  opening (erosion then dilation, 26 px square, after a light blur) removes ribs, nodules and
  stubs and leaves the level of what lies under them; ``S_s -= relu(opening - 0.45)`` removes any
  candidate on tissue brighter than a lung, at no cost inside the lungs.

The image score is the maximum of S_s over scales s = 3.2, 4.5, 6.4 px (ratio sqrt 2; the 4.5 and
6.4 px filters, the large scale and the opening run on the 128 px average, the 3.2 px response is
max-pooled 2x2 down to 128 px) and over space less a 4 % border (no lung reaches the border), then
``logit = a (score - b)``. About 0.06 G multiply-accumulates per image.

Analytic response and the logistic
----------------------------------
A Gaussian bump c exp(-rho^2 / 2 w^2) blurred by G_s is a Gaussian of variance w^2 + s^2, so at
its centre ``R_s = c s^2 w^2 / (w^2 + s^2)^2``: c/4 at s = w, and 0.97 c/4 at worst between two
scales a factor sqrt 2 apart. A flat disc of radius r gives ``R_s = c u exp(-u)``, u = r^2 / 2 s^2,
at most c/e (s = r / sqrt 2): the bump is the worse case. Whatever r in 2.5-4 % (w from r/2 = 3.2
px to r / sqrt 2 = 7.2 px, inside the scales), the weakest nodule (c = 0.12) scores at least
R_min = 0.97 * 0.12 / 4 = 0.029.

Noise: for white noise of standard deviation n per pixel, s^2 Ixx has standard deviation
n s^2 ||G_xx||_2 = n sqrt(3 / 16 pi) / s = 0.244 n / s; A, a mean of Ixx and Iyy (correlated 1/3),
has 0.2 n / s, and B, C and the gradient are the same order, entering with a minus sign. The
maximum of A over the ~2,000 independent patches (4 pi s^2 each) of a 256 px image is about 3.5
standard deviations, so noise scores at most R_noise = 0.7 n / s = 0.0044 at n = 0.02, s = 3.2 px
(the finest scale is the noisiest). Measured on flat noisy images: mean 0.58 n / s, max 0.7 n / s.
Ribs, edges and anatomy score about 0 by construction; measured negatives stay below 0.005.

Logistic: the bias sits half-way, b = (R_min + R_noise) / 2 = 0.0167, and the scale puts the
weakest nodule at logit +2.5 and the noise maximum at -2.5: a = 2.5 / (R_min - b) = 203. The
threshold is p = 0.5 (score = b). Known blind spots: a weak nodule close to a strong edge (closer
than the generator places them) or squeezed between two ribs at its own scale loses part of its
response to their curvature and can be missed; a lung field rendered brighter than 0.45 would
switch the detector off.
"""

from __future__ import annotations

import math

import numpy as np

from models.build.graph import BuiltModel, GraphBuilder
from pipeline.card import InputSpec, ModelCard, OutputSpec, PreprocessSpec

NAME = "nodule-detector"
VERSION = "1"
SIZE = 256
FINE_SCALE = 3.2  # sigma in input pixels, run at full resolution
COARSE_SCALES = (4.5, 6.4)  # sigma in input pixels, run at half resolution
LARGE_SCALE = 12.0  # sigma of the large-scale ridge test, in input pixels (half resolution)
BETA = 1.0  # weight of the gradient term
MU = 1.5  # a nodule's own large-scale curvature is at most 0.78 of its response
BORDER = 5  # half-resolution pixels (4 %) left out of the maximum on each side
TRUNCATE = 4.0  # kernel half-width in sigmas
OPENING = 13  # square of the grey opening, half-resolution pixels (26 input pixels)
LUNG_MAX = 0.45  # the opened image is darker than this in a lung field

MIN_CONTRAST = 0.12
R_MIN = round(0.97 * MIN_CONTRAST / 4, 3)  # the weakest nodule's score: 0.029
R_NOISE = round(0.7 * 0.02 / FINE_SCALE, 4)  # the noise maximum (n = 0.02): 0.0044
BIAS = round((R_MIN + R_NOISE) / 2, 4)  # 0.0167
SCALE = round(2.5 / (R_MIN - BIAS))  # 203

DESCRIPTION = (
    "Analytic (not trained) detector of bright round nodules in the synthetic chest X-rays of "
    "bench/synthetic.py: multi-scale Hessian blob filters (the smaller principal curvature, so "
    "ribs and edges do not fire) with gradient and large-scale ridge penalties and a lung-field "
    "prior (candidates on tissue brighter than 0.45 are dropped), global max over space and "
    "scales, then a fixed logistic calibrated on the weakest specified nodule (contrast 0.12). "
    "It finds synthetic nodules; it has never seen a real X-ray and is not a clinical device."
)


def build() -> BuiltModel:
    g = GraphBuilder(NAME)
    x = g.input("input", (1, SIZE, SIZE))
    half = g.avgpool(x, kernel=2, stride=2)
    a, aniso, _ = _hessian(g, half, LARGE_SCALE / 2)
    ridge = g.node("Add", [a, aniso], g.shapes[a])  # K = -L^2 lambda_min
    fine = g.maxpool(_blob(g, x, FINE_SCALE), kernel=2, stride=2)
    blobs = [fine] + [_blob(g, half, s / 2) for s in COARSE_SCALES]
    lung_max = g.const("lung_max", np.array(LUNG_MAX, np.float32), learned=False)
    outside = g.relu(_sub(g, _opening(g, half), lung_max))  # > 0 off the lung fields
    scores = [_sub(g, _minus_ridge(g, r, ridge), outside) for r in blobs]
    inner = _crop(g, g.concat(scores), BORDER)
    peak = g.node("ReduceMax", [g.flatten(g.global_maxpool(inner))], (1, 1, 1), axes=[1])
    weight = np.array([[SCALE]], dtype=np.float32)
    logits = g.gemm(peak, weight, np.array([-SCALE * BIAS], dtype=np.float32))
    model = g.model(logits, "logits", DESCRIPTION)
    return BuiltModel(model=model, card=_card(g))


def gaussian_kernels(sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1-D correlation kernels (float64): smoothing, first and second derivative at ``sigma``.

    Sampled from the analytic Gaussian, then normalised so that the smoothing kernel sums to 1,
    the first derivative gives exactly 1 on a unit ramp, and the second derivative gives 0 on a
    constant and exactly 2 on t^2. Built from Python floats (``math.exp``) and rounded to
    float32 in the graph, so every machine gets the same bytes.
    """
    half = math.ceil(TRUNCATE * sigma)
    t = np.arange(-half, half + 1, dtype=np.float64)
    smooth = np.array([math.exp(-v * v / (2 * sigma * sigma)) for v in t])
    smooth /= smooth.sum()
    first = t / sigma**2 * smooth  # correlation kernel, i.e. -G'(t)
    first /= (t * first).sum()
    second = (t * t / sigma**4 - 1 / sigma**2) * smooth
    second -= smooth * second.sum()
    second *= 2 / (t * t * second).sum()
    return smooth, first, second


def _hessian(g: GraphBuilder, x: str, sigma: float) -> tuple[str, str, str]:
    """A, sqrt(B^2 + C^2) and s |grad I_s| at ``sigma`` (pixels of x), each one channel."""
    smooth, first, second = gaussian_kernels(sigma)
    half = len(smooth) // 2
    s2 = sigma * sigma
    columns = np.stack([smooth, second, first])[:, None, :, None]  # along y: G, G'', G'
    y = g.conv(_pad_reflect(g, x, half), columns, pads=(0, 0, 0, 0))
    zero = np.zeros_like(smooth)
    rows = np.array(  # along x, from (G_y, G''_y, G'_y)
        [
            [-0.5 * s2 * second, -0.5 * s2 * smooth, zero],  # A = -s^2 (Ixx + Iyy) / 2
            [0.5 * s2 * second, -0.5 * s2 * smooth, zero],  # B = s^2 (Ixx - Iyy) / 2
            [zero, zero, s2 * first],  # C = s^2 Ixy
            [sigma * first, zero, zero],  # s Ix
            [zero, zero, sigma * smooth],  # s Iy
        ]
    )[:, :, None, :]
    a, b, c, gx, gy = g.split(g.conv(y, rows, pads=(0, 0, 0, 0)), 5)
    return a, _norm(g, b, c), _norm(g, gx, gy)


def _blob(g: GraphBuilder, x: str, sigma: float) -> str:
    """R_s = A - sqrt(B^2 + C^2) - beta s |grad I_s|."""
    a, aniso, grad = _hessian(g, x, sigma)
    return _sub(g, _sub(g, a, aniso), _scaled(g, grad, BETA))


def _minus_ridge(g: GraphBuilder, r: str, ridge: str) -> str:
    """S_s = R_s - relu(K - mu R_s)."""
    return _sub(g, r, g.relu(_sub(g, ridge, _scaled(g, r, MU))))


def _opening(g: GraphBuilder, x: str) -> str:
    """Grey opening (erosion then dilation) by an OPENING px square after a light blur.

    It removes every bright thing narrower than the square (ribs, nodules, rib stubs) and keeps
    the wide ones (body, mediastinum, heart): what is left is the level of the tissue underneath.
    """
    smooth, _, _ = gaussian_kernels(1.0)
    half = len(smooth) // 2
    y = g.conv(_pad_reflect(g, x, half), smooth[None, None, :, None], pads=(0, 0, 0, 0))
    y = g.conv(y, smooth[None, None, None, :], pads=(0, 0, 0, 0))
    eroded = g.node("Neg", [_dilate(g, g.node("Neg", [y], g.shapes[y]))], g.shapes[y])
    return _dilate(g, eroded)


def _dilate(g: GraphBuilder, x: str) -> str:
    half = OPENING // 2
    rows = g.node("MaxPool", [x], g.shapes[x], kernel_shape=[1, OPENING], pads=[0, half, 0, half])
    return g.node(
        "MaxPool", [rows], g.shapes[x], kernel_shape=[OPENING, 1], pads=[half, 0, half, 0]
    )


def _norm(g: GraphBuilder, u: str, v: str) -> str:
    shape = g.shapes[u]
    squares = g.node("Add", [g.node("Mul", [u, u], shape), g.node("Mul", [v, v], shape)], shape)
    return g.node("Sqrt", [squares], shape)


def _scaled(g: GraphBuilder, x: str, factor: float) -> str:
    if factor == 1.0:
        return x
    k = g.const("k", np.array(factor, np.float32), learned=False)
    return g.node("Mul", [x, k], g.shapes[x])


def _sub(g: GraphBuilder, x: str, y: str) -> str:
    return g.node("Sub", [x, y], g.shapes[x])


def _pad_reflect(g: GraphBuilder, x: str, half: int) -> str:
    c, h, w = g.shapes[x]
    pads = g.const("pads", np.array([0, 0, half, half, 0, 0, half, half], np.int64), learned=False)
    return g.node("Pad", [x, pads], (c, h + 2 * half, w + 2 * half), mode="reflect")


def _crop(g: GraphBuilder, x: str, border: int) -> str:
    c, h, w = g.shapes[x]
    starts = g.const("starts", np.array([border, border], np.int64), learned=False)
    ends = g.const("ends", np.array([h - border, w - border], np.int64), learned=False)
    axes = g.const("axes", np.array([2, 3], np.int64), learned=False)
    return g.node("Slice", [x, starts, ends, axes], (c, h - 2 * border, w - 2 * border))


def _card(g: GraphBuilder) -> ModelCard:
    return ModelCard(
        name=NAME,
        version=VERSION,
        description=DESCRIPTION,
        input=InputSpec(name="input", layout="NCHW", channels=1, height=SIZE, width=SIZE),
        preprocess=PreprocessSpec(
            resize="stretch", percentiles=(0.5, 99.5), mean=(0.0,), std=(1.0,)
        ),
        output=OutputSpec(
            name="logits", activation="sigmoid", labels=("Nodule",), thresholds={"Nodule": 0.5}
        ),
        batch_size=1,
        sha256="0" * 64,
        trained=False,
        intended_use="demo",  # not for clinical use: see models/README.md
        extra={
            "design": "analytic multi-scale Hessian blob filter; models/build/nodule_detector.py",
            "scales_px": [FINE_SCALE, *COARSE_SCALES],
            "large_scale_px": LARGE_SCALE,
            "beta": BETA,
            "mu": MU,
            "opening_px": 2 * OPENING,
            "lung_max": LUNG_MAX,
            "score_bias": BIAS,
            "score_scale": SCALE,
            "macs": g.macs,
            "flops": 2 * g.macs,
            "params": g.params,
        },
    )
