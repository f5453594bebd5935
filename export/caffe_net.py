"""A Caffe deploy network as the exporter sees it: its layers in run order, its input, and the SSD tail
(``PriorBox`` + ``DetectionOutput``) turned into edgemask's :class:`~edgemask.core.metadata.SSDConfig`.

The SSD tail stays out of the exported graph (the runtime decodes boxes in numpy), so the priors must be
reproducible for any input size: each head records the ``chain`` of spatial ops that sets its map size.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgemask.core.metadata import PriorHead, SSDConfig
from edgemask.export.caffe_proto import CaffeFormatError, Message

# V1 prototxt files spell the layer type as an enum name.
V1_TYPE_NAMES = {
    "CONCAT": "Concat",
    "CONVOLUTION": "Convolution",
    "DROPOUT": "Dropout",
    "ELTWISE": "Eltwise",
    "FLATTEN": "Flatten",
    "INNER_PRODUCT": "InnerProduct",
    "POOLING": "Pooling",
    "RELU": "ReLU",
    "SIGMOID": "Sigmoid",
    "SOFTMAX": "Softmax",
    "SPLIT": "Split",
    "TANH": "TanH",
}

Chain = tuple[tuple[int, int, int, bool], ...]


@dataclass(frozen=True)
class Layer:
    """One deploy-time layer with the fields every consumer needs up front."""

    name: str
    type: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    params: Message


def _in_test_phase(layer: Message) -> bool:
    for rule in layer.all("include"):
        if str(rule.get("phase", "TEST")) != "TEST":
            return False
    return all(str(rule.get("phase", "")) != "TEST" for rule in layer.all("exclude"))


def deploy_layers(net: Message) -> list[Layer]:
    """The layers that run at inference (TEST phase), V1 ``layers`` included, in file order."""
    layers = []
    for msg in net.all("layer") + net.all("layers"):
        if not _in_test_phase(msg):
            continue
        ltype = str(msg.get("type", ""))
        ltype = V1_TYPE_NAMES.get(ltype, ltype)
        name = str(msg.get("name", f"layer{len(layers)}"))
        layers.append(Layer(name, ltype, tuple(msg.all("bottom")), tuple(msg.all("top")), msg))
    return layers


def input_name(net: Message, layers: list[Layer]) -> str:
    """The network's input blob: ``input:`` at the top level, or an ``Input`` layer."""
    if net.all("input"):
        return str(net.all("input")[0])
    for layer in layers:
        if layer.type == "Input" and layer.tops:
            return layer.tops[0]
    raise CaffeFormatError("the prototxt declares no input (neither 'input:' nor an Input layer)")


def conv_geometry(layer: Layer) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    """``(kernel, stride, pad, dilation)`` as (h, w) pairs from a Convolution or Pooling layer."""
    p = layer.params.sub("convolution_param" if layer.type == "Convolution" else "pooling_param")

    def pair(name: str, default: int) -> tuple[int, int]:
        h, w = p.get(f"{name}_h"), p.get(f"{name}_w")
        if h is not None and w is not None:
            return int(h), int(w)
        values = p.all(name) if name != "kernel" else p.all("kernel_size")
        if not values:
            return default, default
        if len(values) == 1:
            return int(values[0]), int(values[0])
        return int(values[0]), int(values[1])

    kernel = pair("kernel", 0)
    if p.get("global_pooling", False):
        raise CaffeFormatError(f"layer {layer.name!r}: global pooling is not supported")
    if kernel[0] <= 0 or kernel[1] <= 0:
        raise CaffeFormatError(f"layer {layer.name!r}: no kernel size")
    return kernel, pair("stride", 1), pair("pad", 0), pair("dilation", 1)


def spatial_op(layer: Layer) -> tuple[int, int, int, bool] | None:
    """The ``(kernel, stride, pad, ceil_mode)`` a layer adds to a chain, or None if it keeps the size."""
    if layer.type not in ("Convolution", "Pooling"):
        return None
    kernel, stride, pad, dilation = conv_geometry(layer)
    if kernel[0] != kernel[1] or stride[0] != stride[1] or pad[0] != pad[1] or dilation[0] != dilation[1]:
        raise CaffeFormatError(f"layer {layer.name!r}: non-square kernel/stride/pad is not supported")
    effective = dilation[0] * (kernel[0] - 1) + 1
    if effective == 1 and stride[0] == 1 and pad[0] == 0:
        return None
    return (effective, stride[0], pad[0], pooling_ceil_mode(layer))


def pooling_ceil_mode(layer: Layer) -> bool:
    """Caffe rounds pooling output sizes up; some forks allow ``round_mode: FLOOR``."""
    if layer.type != "Pooling":
        return False
    p = layer.params.sub("pooling_param")
    return str(p.get("round_mode", "CEIL")) != "FLOOR" and bool(p.get("ceil_mode", True))


def blob_chains(layers: list[Layer], source: str) -> dict[str, Chain]:
    """For every blob reachable from ``source``, the spatial ops between the input and it.

    Branches that meet (Eltwise, Concat) have equal sizes by construction, so the first bottom's
    chain stands for all of them.
    """
    chains: dict[str, Chain] = {source: ()}
    for layer in layers:
        known = [b for b in layer.bottoms if b in chains]
        if not known or layer.type in ("PriorBox", "DetectionOutput"):
            continue
        chain = chains[known[0]]
        op = spatial_op(layer)
        if op is not None:
            chain = (*chain, op)
        for top in layer.tops:
            chains[top] = chain
    return chains


def ssd_config(net: Message) -> tuple[SSDConfig, dict[str, float]]:
    """The SSD tail as metadata, plus its ``DetectionOutput`` thresholds (``confidence``, ``nms``)."""
    layers = deploy_layers(net)
    detection = [layer for layer in layers if layer.type == "DetectionOutput"]
    if len(detection) != 1:
        raise CaffeFormatError("expected one DetectionOutput layer: this is not a Caffe SSD network")
    det = detection[0]
    if len(det.bottoms) < 3:
        raise CaffeFormatError(f"layer {det.name!r}: DetectionOutput needs loc, conf and prior inputs")
    chains = blob_chains(layers, input_name(net, layers))
    producers = {top: layer for layer in layers for top in layer.tops}

    heads = []
    variances: tuple[float, ...] = ()
    for prior_blob in concat_inputs(det.bottoms[2], producers):
        layer = producers.get(prior_blob)
        if layer is None or layer.type != "PriorBox":
            raise CaffeFormatError(f"blob {prior_blob!r} feeding {det.name!r} does not come from a PriorBox")
        heads.append(prior_head(layer, chains))
        given = layer.params.sub("prior_box_param").all("variance")
        head_variances = tuple(float(v) for v in given) or (0.1,)
        if variances and head_variances != variances:
            raise CaffeFormatError(f"layer {layer.name!r}: PriorBox heads with different variances")
        variances = head_variances
    if len(variances) == 1:
        variances *= 4
    if len(variances) != 4:
        raise CaffeFormatError("PriorBox variance must have 1 or 4 values")

    p = det.params.sub("detection_output_param")
    nms = p.sub("nms_param")
    if str(p.get("code_type", "CENTER_SIZE")) != "CENTER_SIZE":
        raise CaffeFormatError(f"layer {det.name!r}: only code_type CENTER_SIZE is supported")
    if not p.get("share_location", True):
        raise CaffeFormatError(f"layer {det.name!r}: share_location false is not supported")
    top_k = nms.get("top_k")
    config = SSDConfig(
        heads=tuple(heads),
        variances=tuple(variances),  # type: ignore[arg-type]
        nms_threshold=float(nms.get("nms_threshold", 0.3)),
        top_k=int(top_k) if top_k is not None else -1,
        keep_top_k=int(p.get("keep_top_k", -1)),
        background_label=int(p.get("background_label_id", 0)),
    )
    thresholds = {
        "confidence": float(p.get("confidence_threshold", 0.01)),
        "nms": config.nms_threshold,
    }
    return config, thresholds


def concat_inputs(blob: str, producers: dict[str, Layer]) -> list[str]:
    """The blobs a Concat (possibly behind Reshape/Flatten/Softmax) joins, in order; else ``[blob]``."""
    layer = producers.get(blob)
    while layer is not None and layer.type in ("Reshape", "Flatten", "Softmax"):
        layer = producers.get(layer.bottoms[0])
    if layer is not None and layer.type == "Concat":
        return list(layer.bottoms)
    return [blob]


def prior_head(layer: Layer, chains: dict[str, Chain]) -> PriorHead:
    p = layer.params.sub("prior_box_param")
    min_sizes, max_sizes = p.all("min_size"), p.all("max_size")
    if len(min_sizes) != 1 or len(max_sizes) > 1:
        raise CaffeFormatError(f"layer {layer.name!r}: needs one min_size and at most one max_size")
    if p.get("step_h") is not None or p.get("img_size") is not None or p.get("img_h") is not None:
        raise CaffeFormatError(f"layer {layer.name!r}: step_h/step_w and img_size are not supported")
    feature = layer.bottoms[0] if layer.bottoms else ""
    if feature not in chains:
        raise CaffeFormatError(f"layer {layer.name!r}: feature map {feature!r} does not come from the input")
    step = p.get("step")
    return PriorHead(
        min_size=float(min_sizes[0]),
        max_size=float(max_sizes[0]) if max_sizes else None,
        aspect_ratios=tuple(float(a) for a in p.all("aspect_ratio")),
        flip=bool(p.get("flip", True)),
        clip=bool(p.get("clip", False)),
        step=float(step) if step is not None else None,
        offset=float(p.get("offset", 0.5)),
        chain=chains[feature],
    )
