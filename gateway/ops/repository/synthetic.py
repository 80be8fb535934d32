"""Contract-true synthetic models: NOT face models.

They have exactly the upstream I/O contracts of InsightFace's det_10g (SCRFD), w600k_r50
(ArcFace), inswapper_128, genderage (Attribute), 2d106det and 1k3d68 (Landmark) and insightface
2.1's liveness addon, so InsightFace's own Python classes accept them and the
prepare step meets the graph shapes it will meet in the real files. Weights come from a
fixed seed.

Profiles:
- ``tiny`` (tests): the detector is selective and exact. At stride s it fires on a bright
  square of side 4*s detector-input pixels (32, 64 or 128 px) on a dark background, centred on
  the stride grid (centre at a multiple of s); the decoded box is that square and the five
  landmarks sit at fixed fractions of it (``TINY_KPS_UNITS``). Anchor 1 scores lower than
  anchor 0 at the same location, so NMS ties never arise.
- ``realistic`` (benchmarks): the same detection logic plus convolution stacks sized like the
  real models (multiply-adds and parameter counts within about 30%), whose heads add a small
  input-dependent term, so the compute is real and the outputs stay plausible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import onnx
from onnx import helper

from gateway.ops.repository.graph import FLOAT, GraphBuilder, value_info
from gateway.processing.meanshape import MEANSHAPE_68
from gateway.processing.scrfd import SCRFD_STRIDES

Profile = Literal["tiny", "realistic"]
PROFILES: tuple[Profile, ...] = ("tiny", "realistic")
NOT_A_FACE_MODEL = "synthetic: not a face model"
UPSTREAM_OPSET = 11
UPSTREAM_IR_VERSION = 6
SEED = 20261124

# Landmarks of the tiny detector, in stride units from the anchor centre (box half-size is 2):
# InsightFace's ArcFace 112x112 template mapped onto the box, so alignment is well-posed.
TINY_KPS_UNITS = np.array(
    [[-0.6324, -0.1540], [0.5774, -0.1594], [0.0018, 0.5606], [-0.5156, 1.2994], [0.4807, 1.2956]],
    dtype=np.float32,
)
TINY_BOX_HALF_UNITS = 2.0
STRIDES = SCRFD_STRIDES


@dataclass(frozen=True)
class SyntheticModels:
    """Upstream-form synthetic models, named by their role."""

    detector: onnx.ModelProto
    recognizer: onnx.ModelProto
    swapper: onnx.ModelProto
    genderage: onnx.ModelProto
    liveness: onnx.ModelProto
    landmark_2d_106: onnx.ModelProto
    landmark_3d_68: onnx.ModelProto


def _he(rng: np.random.Generator, shape: tuple[int, ...], gain: float = 1.0) -> npt.NDArray[Any]:
    fan_in = int(np.prod(shape[1:]))
    return (
        rng.standard_normal(shape, dtype=np.float32) * np.float32(gain * np.sqrt(2.0 / fan_in))
    ).astype(np.float32)


def _conv(
    g: GraphBuilder,
    rng: np.random.Generator,
    x: str,
    c_in: int,
    c_out: int,
    *,
    kernel: int = 3,
    stride: int = 1,
    relu: bool = True,
    gain: float = 1.0,
) -> str:
    w = g.const(_he(rng, (c_out, c_in, kernel, kernel), gain), "w")
    b = g.const(np.zeros(c_out, np.float32), "b")
    pad = kernel // 2
    y = g.op(
        "Conv",
        [x, w, b],
        "conv",
        kernel_shape=[kernel, kernel],
        strides=[stride, stride],
        pads=[pad] * 4,
    )
    return g.op("Relu", [y], "relu") if relu else y


def _finish(
    g: GraphBuilder,
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    name: str,
) -> onnx.ModelProto:
    graph = helper.make_graph(g.nodes, name, inputs, outputs, g.initializers)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", UPSTREAM_OPSET)],
        producer_name="facegate-synthetic",
    )
    model.ir_version = UPSTREAM_IR_VERSION
    model.doc_string = NOT_A_FACE_MODEL
    helper.set_model_props(model, {"facegate.synthetic": NOT_A_FACE_MODEL})
    onnx.checker.check_model(model)
    return model


def _box_mean(g: GraphBuilder, x: str, window: int, stride: int, pad_begin: int) -> str:
    """Mean of a window x window box whose top-left is pad_begin pixels before the anchor.

    An AveragePool counting the zero padding: the same sums as a convolution with a constant
    1/window^2 kernel, which OpenVINO's CPU plugin cannot compile at these window sizes (it
    asked for ~40 GB), so the realistic stand-in could not be timed on OpenVINO.
    """
    pad_end = window - stride - pad_begin
    return g.op(
        "AveragePool",
        [x],
        "boxmean",
        kernel_shape=[window, window],
        strides=[stride, stride],
        pads=[pad_begin, pad_begin, pad_end, pad_end],
        count_include_pad=1,
    )


def _detector_head(
    g: GraphBuilder, bright: str, stride: int, extra_logit: str | None, names: tuple[str, str, str]
) -> None:
    inner = _box_mean(g, bright, 4 * stride, stride, 2 * stride)
    outer = _box_mean(g, bright, 6 * stride, stride, 3 * stride)
    # ring mean = (36*outer - 16*inner) / 20; logit = 20*(inner - ring) - 14
    ring = g.op(
        "Sub",
        [g.op("Mul", [outer, g.const(36.0 / 20.0)]), g.op("Mul", [inner, g.const(16.0 / 20.0)])],
    )
    logit = g.op("Sub", [g.op("Mul", [g.op("Sub", [inner, ring]), g.const(20.0)]), g.const(14.0)])
    if extra_logit is not None:
        logit = g.op("Add", [logit, extra_logit])
    logits = g.op("Concat", [logit, g.op("Sub", [logit, g.const(1.0)])], axis=1)
    dist_w = g.const(np.zeros((8, 1, 1, 1), np.float32), "zero_w")
    dist = g.op(
        "Conv",
        [inner, dist_w, g.const(np.full(8, TINY_BOX_HALF_UNITS, np.float32), "box_bias")],
        kernel_shape=[1, 1],
    )
    kps_w = g.const(np.zeros((20, 1, 1, 1), np.float32), "zero_w")
    kps = g.op(
        "Conv",
        [inner, kps_w, g.const(np.tile(TINY_KPS_UNITS.reshape(-1), 2), "kps_bias")],
        kernel_shape=[1, 1],
    )
    # As in det_10g: NCHW head -> NHWC -> (H*W*anchors, C) with the batch folded into dim 0.
    score = g.op("Sigmoid", [logits])
    for tensor, width, out in ((score, 1, names[0]), (dist, 4, names[1]), (kps, 10, names[2])):
        nhwc = g.op("Transpose", [tensor], perm=[0, 2, 3, 1])
        g.op_into("Reshape", [nhwc, g.const(np.array([-1, width]), "shape", np.int64)], out)


def build_detector(profile: Profile, rng: np.random.Generator) -> onnx.ModelProto:
    """SCRFD det_10g contract: input.1 [1,3,H,W] -> 9 outputs (scores, boxes, kps per stride)."""
    g = GraphBuilder("det_")
    # Input arrives as (x - 127.5) / 128 in RGB; brightness in [0, 1] is mean * 128/255 + 0.5.
    bright_w = g.const(np.full((1, 3, 1, 1), 128.0 / 255.0 / 3.0, np.float32), "gray")
    bright = g.op(
        "Conv",
        ["input.1", bright_w, g.const(np.array([127.5 / 255.0], np.float32))],
        "bright",
        kernel_shape=[1, 1],
    )
    extras: dict[int, str | None] = dict.fromkeys(STRIDES)
    if profile == "realistic":
        x = _conv(g, rng, "input.1", 3, 32, stride=2)
        x = _conv(g, rng, x, 32, 64, stride=2)
        for _ in range(7):
            x = _conv(g, rng, x, 64, 64)
        for stride, c_in, c_out, repeats in ((8, 64, 128, 3), (16, 128, 256, 1), (32, 256, 512, 1)):
            x = _conv(g, rng, x, c_in, c_out, stride=2)
            for _ in range(repeats):
                x = _conv(g, rng, x, c_out, c_out)
            extras[stride] = _conv(g, rng, x, c_out, 1, kernel=1, relu=False, gain=1e-3)
    # det_10g's own output names (numbered tensors), so the prepare step must rename them.
    names = [("448", "451", "454"), ("471", "474", "477"), ("494", "497", "500")]
    # Upstream output order: scores for strides 8/16/32, then boxes, then keypoints.
    for stride, head_names in zip(STRIDES, names, strict=True):
        _detector_head(g, bright, stride, extras[stride], head_names)
    widths = (1, 4, 10)
    outputs = [
        value_info(n[k], FLOAT, [f"anchors_{s}", widths[k]])
        for k in range(3)
        for s, n in zip(STRIDES, names, strict=True)
    ]
    inputs = [value_info("input.1", FLOAT, [1, 3, "height", "width"])]
    return _finish(g, inputs, outputs, f"scrfd_synthetic_{profile}")


def build_recognizer(profile: Profile, rng: np.random.Generator) -> onnx.ModelProto:
    """ArcFace w600k_r50 contract: input.1 [N,3,112,112] -> [N,512]."""
    g = GraphBuilder("rec_")
    if profile == "tiny":
        pooled = g.op("AveragePool", ["input.1"], "pool", kernel_shape=[14, 14], strides=[14, 14])
        flat = g.op("Flatten", [pooled], axis=1)
        w = g.const(rng.standard_normal((192, 512), dtype=np.float32), "fc")
        g.op_into(
            "Gemm",
            [flat, w, g.const(rng.standard_normal(512, dtype=np.float32) * 0.1, "fc_b")],
            "683",
        )
    else:
        # iresnet50-shaped plain stack: stages of 3/4/14/3 blocks, two convs each.
        x = _conv(g, rng, "input.1", 3, 64)
        c_in = 64
        for c_out, blocks in ((64, 3), (128, 4), (256, 14), (512, 3)):
            x = _conv(g, rng, x, c_in, c_out, stride=2)
            for _ in range(2 * blocks - 1):
                x = _conv(g, rng, x, c_out, c_out)
            c_in = c_out
        flat = g.op("Flatten", [x], axis=1)
        w = g.const(
            rng.standard_normal((512 * 7 * 7, 512), dtype=np.float32) * np.float32(1 / 112), "fc"
        )
        g.op_into("Gemm", [flat, w, g.const(np.zeros(512, np.float32), "fc_b")], "683")
    inputs = [value_info("input.1", FLOAT, ["None", 3, 112, 112])]
    return _finish(
        g, inputs, [value_info("683", FLOAT, ["None", 512])], f"arcface_synthetic_{profile}"
    )


def build_swapper(profile: Profile, rng: np.random.Generator) -> onnx.ModelProto:
    """inswapper_128 contract: target [1,3,128,128] in [0,1] RGB, source [1,512] latent -> output [1,3,128,128] in [0,1]; emap is the last initializer."""
    g = GraphBuilder("swap_")
    style = g.op(
        "Gemm",
        ["source", g.const(rng.standard_normal((512, 3), dtype=np.float32) * 2.0, "style_w")],
        "style",
    )
    style4 = g.op("Reshape", [style, g.const(np.array([1, 3, 1, 1]), "shape", np.int64)])
    pattern = g.const(rng.standard_normal((1, 3, 128, 128), dtype=np.float32) * 0.3, "pattern")
    centred = g.op("Mul", [g.op("Sub", ["target", g.const(0.5)]), g.const(4.0)])
    logit = g.op("Add", [g.op("Add", [centred, style4]), pattern])
    if profile == "realistic":
        x = _conv(g, rng, "target", 3, 128)
        x = _conv(g, rng, x, 128, 256, stride=2)
        x = _conv(g, rng, x, 256, 1024, stride=2)
        latent = g.op(
            "Gemm",
            ["source", g.const(rng.standard_normal((512, 1024), dtype=np.float32) * 0.05, "mod_w")],
        )
        latent4 = g.op("Reshape", [latent, g.const(np.array([1, 1024, 1, 1]), "shape", np.int64)])
        for _ in range(15):
            x = _conv(g, rng, g.op("Add", [x, latent4]), 1024, 1024)
        up = g.const(np.array([1.0, 1.0, 2.0, 2.0], np.float32), "scales")
        roi = g.const(np.zeros(0, np.float32), "roi")
        x = _conv(g, rng, g.op("Resize", [x, roi, up], mode="nearest"), 1024, 256)
        x = _conv(g, rng, g.op("Resize", [x, roi, up], mode="nearest"), 256, 64)
        x = _conv(g, rng, x, 64, 3, relu=False, gain=1e-2)
        logit = g.op("Add", [logit, x])
    g.op_into("Sigmoid", [logit], "output")
    # Upstream stores the 512x512 emap as the graph's last initializer (unused by the nodes).
    emap, _ = np.linalg.qr(rng.standard_normal((512, 512)))
    g.initializers.append(onnx.numpy_helper.from_array(emap.astype(np.float32), "emap"))
    inputs = [value_info("target", FLOAT, [1, 3, 128, 128]), value_info("source", FLOAT, [1, 512])]
    return _finish(
        g, inputs, [value_info("output", FLOAT, [1, 3, 128, 128])], f"inswapper_synthetic_{profile}"
    )


# Tiny genderage: from the crop's mean colour (channels in [-1, 1] after the graph's own
# normalisation), male when red outweighs blue, age 35 +/- 25 with the green mean.
TINY_GENDER_GAIN = 4.0
TINY_AGE_BASE = 0.35
TINY_AGE_GAIN = 0.25


def build_genderage(profile: Profile, rng: np.random.Generator) -> onnx.ModelProto:
    """buffalo_l genderage.onnx contract: data [None,3,96,96] raw 0..255 RGB -> fc1 [1,3].

    As in the upstream (MXNet-converted) file, the graph normalises its own input with a
    Sub and a Mul node among its first nodes, which is how insightface's Attribute picks
    input_mean 0 and input_std 1; the output is declared [1, 3] although any batch runs.
    """
    # No name prefix: insightface looks for node names starting "_minus" and "_mul".
    g = GraphBuilder("")
    x = g.op("Sub", ["data", g.const(127.5)], "_minusscalar0")
    x = g.op("Mul", [x, g.const(1.0 / 127.5)], "_mulscalar0")
    pooled = g.op("Flatten", [g.op("GlobalAveragePool", [x], "pool")], axis=1)
    # Rows: R, G, B channel means (input is RGB); columns: female, male, age / 100.
    weights = np.array(
        [
            [-TINY_GENDER_GAIN, TINY_GENDER_GAIN, 0.0],
            [0.0, 0.0, TINY_AGE_GAIN],
            [TINY_GENDER_GAIN, -TINY_GENDER_GAIN, 0.0],
        ],
        np.float32,
    )
    bias = np.array([0.0, 0.0, TINY_AGE_BASE], np.float32)
    logits = g.op("Gemm", [pooled, g.const(weights, "fc_w"), g.const(bias, "fc_b")])
    if profile == "realistic":
        # MobileNet-sized stack (the upstream file has 31 convolutions, 1.3 MB of weights).
        y = _conv(g, rng, x, 3, 32, stride=2)
        for c_in, c_out in ((32, 64), (64, 128), (128, 256)):
            y = _conv(g, rng, y, c_in, c_out, stride=2)
            y = _conv(g, rng, y, c_out, c_out)
        y = g.op("Flatten", [g.op("GlobalAveragePool", [y], "pool")], axis=1)
        extra = g.const(rng.standard_normal((256, 3), dtype=np.float32) * 1e-3, "head_w")
        logits = g.op("Add", [logits, g.op("MatMul", [y, extra])])
    g.op_into("Identity", [logits], "fc1")
    inputs = [value_info("data", FLOAT, ["None", 3, 96, 96])]
    return _finish(g, inputs, [value_info("fc1", FLOAT, [1, 3])], f"genderage_synthetic_{profile}")


# Tiny liveness: live probability rises with the crop's mean brightness (RGB in [0, 1]); the
# centre puts the test scenes' faces on both sides of the 0.8 default threshold.
TINY_LIVE_GAIN = 15.0
TINY_LIVE_CENTRE = 0.22


def build_liveness(profile: Profile, rng: np.random.Generator) -> onnx.ModelProto:
    """insightface 2.1 liveness addon contract: input [N,3,80,80] RGB/255 -> output [N] probability."""
    g = GraphBuilder("live_")
    pooled = g.op("GlobalAveragePool", ["input"], "pool")
    mean = g.op("ReduceMean", [pooled], "mean", axes=[1, 2, 3], keepdims=0)
    logit = g.op("Mul", [g.op("Sub", [mean, g.const(TINY_LIVE_CENTRE)]), g.const(TINY_LIVE_GAIN)])
    if profile == "realistic":
        # About the upstream file's size (1.5 MB): a small convolution stack.
        y = _conv(g, rng, "input", 3, 32, stride=2)
        for c_in, c_out in ((32, 64), (64, 128), (128, 256)):
            y = _conv(g, rng, y, c_in, c_out, stride=2)
            y = _conv(g, rng, y, c_out, c_out)
        y = g.op("Flatten", [g.op("GlobalAveragePool", [y], "pool")], axis=1)
        extra = g.const(rng.standard_normal((256, 1), dtype=np.float32) * 1e-3, "head_w")
        flat = g.op(
            "Reshape", [g.op("MatMul", [y, extra]), g.const(np.array([-1]), "shape", np.int64)]
        )
        logit = g.op("Add", [logit, flat])
    g.op_into("Sigmoid", [logit], "output")
    inputs = [value_info("input", FLOAT, ["batch", 3, 80, 80])]
    return _finish(
        g, inputs, [value_info("output", FLOAT, ["batch"])], f"liveness_synthetic_{profile}"
    )


# Tiny landmarks: a fixed face-like point set (insightface's mean shape, in crop units) moved by
# a linear read of the crop: 24x24 px block means of each channel (8x8 blocks, 192 features,
# after the graph's own (x - 127.5) / 128) through random weights, so every pixel region and
# colour channel moves the points (a shifted or BGR crop gives other points). 1k3d68's 68 points
# also turn by a yaw that follows the left-right brightness difference and a pitch that follows
# the top-bottom one (small-angle rotation, linear in the difference), so pose varies.
LANDMARK_INPUT_PX = 192
_LANDMARK_BLOCK_PX = 24
_LANDMARK_FEATURES = 3 * (LANDMARK_INPUT_PX // _LANDMARK_BLOCK_PX) ** 2
TINY_LANDMARK_GAIN = 0.004
TINY_POSE_GAIN = 1.0
LANDMARK_3D_RAW_POINTS = 1103


def _landmark_template_2d() -> npt.NDArray[np.float32]:
    """106 (x, y) points in crop units: the mean shape's 68 and 38 midpoints between them."""
    xy = MEANSHAPE_68[:, :2]
    mids = (xy[:38] + xy[1:39]) / 2
    template: npt.NDArray[np.float32] = np.concatenate([xy, mids]).astype(np.float32)
    return template


def _block_features(g: GraphBuilder, x: str) -> str:
    """(N, 192) block means of a normalised (N, 3, 192, 192) input, channel-major."""
    block = [_LANDMARK_BLOCK_PX, _LANDMARK_BLOCK_PX]
    pooled = g.op("AveragePool", [x], "blocks", kernel_shape=block, strides=block)
    return g.op("Flatten", [pooled], axis=1)


def _pose_weights(points: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(192, 3P) weights turning (x, y, z) points by yaw ~ left-right and pitch ~ top-bottom."""
    side = LANDMARK_INPUT_PX // _LANDMARK_BLOCK_PX
    cols = np.tile(np.where(np.arange(side) < side // 2, 1.0, -1.0), (3, side, 1))
    rows = np.transpose(cols, (0, 2, 1))
    yaw = (cols / cols.size * 2).reshape(-1) * TINY_POSE_GAIN
    pitch = (rows / rows.size * 2).reshape(-1) * TINY_POSE_GAIN
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    # d/d(yaw) of (x, y, z) = (z, 0, -x); d/d(pitch) = (0, -z, y).
    turn_yaw = np.stack([z, np.zeros_like(z), -x], axis=1).reshape(-1)
    turn_pitch = np.stack([np.zeros_like(z), -z, y], axis=1).reshape(-1)
    return (np.outer(yaw, turn_yaw) + np.outer(pitch, turn_pitch)).astype(np.float32)


def _landmark_head(
    g: GraphBuilder,
    rng: np.random.Generator,
    profile: Profile,
    x: str,
    template: npt.NDArray[np.float32],
    pose: npt.NDArray[np.float32] | None,
) -> str:
    """fc1 (N, len(template)) = template + features @ weights (+ pose turn) (+ a deep term)."""
    width = template.size
    weights = rng.standard_normal((_LANDMARK_FEATURES, width), dtype=np.float32)
    weights *= np.float32(TINY_LANDMARK_GAIN)
    if pose is not None:
        weights[:, -pose.shape[1] :] += pose
    out = g.op(
        "Gemm",
        [_block_features(g, x), g.const(weights, "fc_w"), g.const(template.reshape(-1), "fc_b")],
    )
    if profile == "realistic":
        out = g.op("Add", [out, _landmark_backbone(g, rng, x, width, pose is not None)])
    return out


def _landmark_backbone(
    g: GraphBuilder, rng: np.random.Generator, x: str, width: int, deep: bool
) -> str:
    """Convolution stacks sized like the upstream files: 2d106det (~5 MB, a MobileNet-sized
    stack, ~1.1 M parameters here) and 1k3d68 (~144 MB, a ResNet-50-sized stack, ~35 M here);
    the head adds a small input-dependent term."""
    y = _conv(g, rng, x, 3, 32 if not deep else 64, stride=2)
    c_in = 32 if not deep else 64
    stages = ((64, 3), (128, 4), (256, 6), (512, 5)) if deep else ((64, 1), (128, 1), (256, 1))
    for c_out, blocks in stages:
        y = _conv(g, rng, y, c_in, c_out, stride=2)
        for _ in range((2 * blocks - 1) if deep else blocks):
            y = _conv(g, rng, y, c_out, c_out)
        c_in = c_out
    y = g.op("Flatten", [g.op("GlobalAveragePool", [y], "pool")], axis=1)
    extra = g.const(rng.standard_normal((c_in, width), dtype=np.float32) * 1e-4, "head_w")
    return g.op("MatMul", [y, extra])


def build_landmark_2d106(profile: Profile, rng: np.random.Generator) -> onnx.ModelProto:
    """buffalo_l 2d106det.onnx contract: data [None,3,192,192] raw 0..255 RGB -> fc1 [1,212].

    Normalises its own input with leading Sub/Mul nodes named as MXNet exports name them, so
    insightface's Landmark feeds raw pixels (mean 0, std 1); routed to Landmark by the 192x192
    input. Output: 106 (x, y) pairs in crop units of [-1, 1].
    """
    g = GraphBuilder("")
    x = g.op("Sub", ["data", g.const(127.5)], "_minusscalar0")
    x = g.op("Mul", [x, g.const(1.0 / 128.0)], "_mulscalar0")
    out = _landmark_head(g, rng, profile, x, _landmark_template_2d(), None)
    g.op_into("Identity", [out], "fc1")
    inputs = [value_info("data", FLOAT, ["None", 3, LANDMARK_INPUT_PX, LANDMARK_INPUT_PX])]
    return _finish(
        g, inputs, [value_info("fc1", FLOAT, [1, 212])], f"landmark2d106_synthetic_{profile}"
    )


def build_landmark_3d68(profile: Profile, rng: np.random.Generator) -> onnx.ModelProto:
    """buffalo_l 1k3d68.onnx contract: data [None,3,192,192] raw 0..255 RGB -> fc1 [1,3309].

    A leading batch norm named 'bn_data' normalises the input (insightface's Landmark then feeds
    raw pixels); the 3309 outputs are 1103 (x, y, z) points of which the last 68 are the face.
    """
    g = GraphBuilder("")
    channels = 3
    x = g.op(
        "BatchNormalization",
        [
            "data",
            g.const(np.full(channels, 1.0 / 128.0, np.float32), "bn_gamma"),
            g.const(np.full(channels, -127.5 / 128.0, np.float32), "bn_beta"),
            g.const(np.zeros(channels, np.float32), "bn_mean"),
            g.const(np.ones(channels, np.float32), "bn_var"),
        ],
        epsilon=0.0,
    )
    # insightface matches the node's exact name, which the builder would number.
    g.nodes[-1].name = "bn_data"
    filler = rng.uniform(-0.6, 0.6, (LANDMARK_3D_RAW_POINTS - 68, 3)).astype(np.float32)
    template = np.concatenate([filler, MEANSHAPE_68]).astype(np.float32)
    pose = _pose_weights(MEANSHAPE_68)
    out = _landmark_head(g, rng, profile, x, template, pose)
    g.op_into("Identity", [out], "fc1")
    inputs = [value_info("data", FLOAT, ["None", 3, LANDMARK_INPUT_PX, LANDMARK_INPUT_PX])]
    return _finish(
        g, inputs, [value_info("fc1", FLOAT, [1, 3309])], f"landmark3d68_synthetic_{profile}"
    )


def build_synthetic_models(profile: Profile, seed: int = SEED) -> SyntheticModels:
    """Build every upstream-form synthetic model for one profile."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
    return SyntheticModels(
        detector=build_detector(profile, np.random.default_rng(seed)),
        recognizer=build_recognizer(profile, np.random.default_rng(seed + 1)),
        swapper=build_swapper(profile, np.random.default_rng(seed + 2)),
        genderage=build_genderage(profile, np.random.default_rng(seed + 3)),
        liveness=build_liveness(profile, np.random.default_rng(seed + 4)),
        landmark_2d_106=build_landmark_2d106(profile, np.random.default_rng(seed + 5)),
        landmark_3d_68=build_landmark_3d68(profile, np.random.default_rng(seed + 6)),
    )
