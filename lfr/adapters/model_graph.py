"""ONNX graph rewrites for a recogniser: onnxruntime's dynamic int8 back to float, and float to static int8.

A dynamically quantised graph (onnxruntime `quantize_dynamic`) computes every convolution as

    x -> DynamicQuantizeLinear -> ConvInteger(x_q, W_q, x_zp, W_zp) -> Cast -> Mul(x_scale * W_scale)
      -> [Add(Reshape(bias))]

re-quantising the activation at run time before each layer. `dequantised` rebuilds each chain as one
`Conv(x, (W_q - W_zp) * W_scale, bias)` (and `MatMulInteger` as `MatMul`): the same weights, in float.
`statically_quantised` turns a float graph into QDQ form with activation ranges measured once on
calibration inputs, so onnxruntime can run fused int8 kernels (VNNI on x86) with no run-time re-quantising.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from lfr.domain.errors import LfrError

# insightface decides a recogniser's input normalisation from the names of its first 8 nodes (a `Sub` and a
# `Mul` there mean an mxnet export taking raw pixels): rewritten nodes get names that can never match.
NODE_NAME = "lfr{index}_{op}"

# DequantizeLinear takes a per-channel `axis` from opset 13 on.
PER_CHANNEL_OPSET = 13

QUANTISED_OPS = ["Conv", "MatMul", "Gemm"]

INTEGER_OPS = {"ConvInteger": "Conv", "MatMulInteger": "MatMul"}


class GraphRewriteError(LfrError):
    """The recogniser's graph is not one this rewrite understands; nothing was written."""


def load_model(path: Path) -> onnx.ModelProto:
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except (OSError, ValueError, DecodeError, onnx.checker.ValidationError) as exc:
        raise GraphRewriteError(f"{path} is not a readable ONNX model: {exc}") from exc
    return model


def is_dynamically_quantised(model: onnx.ModelProto) -> bool:
    return any(node.op_type in INTEGER_OPS for node in model.graph.node)


def dequantised(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same network in float: every ConvInteger/MatMulInteger chain as a plain Conv/MatMul."""
    graph = model.graph
    initial = {tensor.name: tensor for tensor in graph.initializer}
    producer = {output: node for node in graph.node for output in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)

    def array(name: str) -> np.ndarray:
        if name not in initial:
            raise GraphRewriteError(f"expected a constant weight tensor, found the computed tensor {name!r}")
        return numpy_helper.to_array(initial[name])

    def sole_consumer(name: str, op_type: str) -> onnx.NodeProto | None:
        found = consumers.get(name, [])
        if len(found) == 1 and found[0].op_type == op_type:
            return found[0]
        return None

    dropped: set[int] = set()
    replacement: dict[int, onnx.NodeProto] = {}
    new_tensors: list[onnx.TensorProto] = []
    for node in graph.node:
        if node.op_type not in INTEGER_OPS:
            continue
        quantise = producer.get(node.input[0])
        cast = sole_consumer(node.output[0], "Cast")
        rescale = sole_consumer(cast.output[0], "Mul") if cast is not None else None
        if quantise is None or quantise.op_type != "DynamicQuantizeLinear" or cast is None or rescale is None:
            raise GraphRewriteError(
                f"{node.op_type} node {node.name or node.output[0]!r} is not in onnxruntime's dynamic "
                "quantisation pattern (DynamicQuantizeLinear -> op -> Cast -> Mul)"
            )
        scales = producer.get(next(i for i in rescale.input if i != cast.output[0]))
        if scales is None or scales.op_type != "Mul":
            raise GraphRewriteError(f"no scale product feeds the rescaling of {node.output[0]!r}")
        weight_scale = array(next(i for i in scales.input if i in initial))
        weight_zero = array(node.input[3]) if len(node.input) > 3 and node.input[3] else np.zeros(1)
        quantised = array(node.input[1])
        if node.op_type == "ConvInteger" and weight_scale.ndim == 1:
            # per-channel: one scale per output channel, axis 0 of an OIHW kernel
            weight_scale = weight_scale.reshape(-1, 1, 1, 1)
            weight_zero = weight_zero.reshape(-1, 1, 1, 1)
        weight = (quantised.astype(np.float32) - weight_zero.astype(np.float32)) * weight_scale.astype(
            np.float32
        )
        weight_name = f"{node.input[1]}_dequantised"
        new_tensors.append(numpy_helper.from_array(weight.astype(np.float32), weight_name))
        inputs = [quantise.input[0], weight_name]
        output = rescale.output[0]
        removed = [cast, rescale, scales]
        bias_add = sole_consumer(output, "Add") if node.op_type == "ConvInteger" else None
        bias = _conv_bias(bias_add, output, producer, initial) if bias_add is not None else None
        if bias_add is not None and bias is not None:
            bias_name, reshape = bias
            inputs.append(bias_name)
            output = bias_add.output[0]
            removed.append(bias_add)
            if reshape is not None and len(consumers[reshape.output[0]]) == 1:
                removed.append(reshape)
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        replacement[id(node)] = helper.make_node(INTEGER_OPS[node.op_type], inputs, [output], **attributes)
        dropped.update(id(n) for n in removed)
    if not replacement:
        return model
    for node in graph.node:
        if node.op_type == "DynamicQuantizeLinear" and all(
            id(c) in replacement or id(c) in dropped for out in node.output for c in consumers.get(out, [])
        ):
            dropped.add(id(node))
    nodes = [replacement.get(id(n), n) for n in graph.node if id(n) not in dropped]
    return _rebuilt(model, nodes, list(graph.initializer) + new_tensors)


def _conv_bias(
    add: onnx.NodeProto,
    output: str,
    producer: dict[str, onnx.NodeProto],
    initial: dict[str, onnx.TensorProto],
) -> tuple[str, onnx.NodeProto | None] | None:
    """The 1-D bias initializer that `add` adds to a convolution's output, directly or through a Reshape."""
    other = next((i for i in add.input if i != output), None)
    if other is None:
        return None
    reshape = producer.get(other)
    if reshape is not None and reshape.op_type == "Reshape" and reshape.input[0] in initial:
        source = reshape.input[0]
    elif other in initial:
        reshape, source = None, other
    else:
        return None
    if len(initial[source].dims) != 1:
        return None
    return source, reshape


def _rebuilt(
    model: onnx.ModelProto, nodes: Sequence[onnx.NodeProto], initializers: Sequence[onnx.TensorProto]
) -> onnx.ModelProto:
    used = {name for node in nodes for name in node.input}
    kept = [t for t in initializers if t.name in used]
    named = []
    for index, node in enumerate(nodes):
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = NODE_NAME.format(index=index, op=node.op_type)
        named.append(copy)
    graph = helper.make_graph(
        named, model.graph.name or "recogniser", list(model.graph.input), list(model.graph.output), kept
    )
    rebuilt = helper.make_model(graph, opset_imports=list(model.opset_import), producer_name="lfr")
    rebuilt.ir_version = model.ir_version
    rebuilt.metadata_props.extend(model.metadata_props)  # e.g. onnxruntime's "pre-processed" mark
    onnx.checker.check_model(rebuilt)
    return rebuilt


def depthwise_convolutions(model: onnx.ModelProto) -> list[str]:
    return [
        node.name
        for node in model.graph.node
        if node.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in node.attribute)
    ]


def input_convolutions(model: onnx.ModelProto) -> list[str]:
    inputs = {i.name for i in model.graph.input}
    return [node.name for node in model.graph.node if node.op_type == "Conv" and node.input[0] in inputs]


def _with_opset(model: onnx.ModelProto, version: int) -> onnx.ModelProto:
    current = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if current >= version:
        return model
    return onnx.version_converter.convert_version(model, version)


def named_for_insightface(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose nodes carry lfr's names, so insightface reads its input normalisation as it did before."""
    return _rebuilt(model, list(model.graph.node), list(model.graph.initializer))


def statically_quantised(model: onnx.ModelProto, calibration: Sequence[np.ndarray]) -> onnx.ModelProto:
    """QDQ int8: per-channel int8 weights, uint8 activations with ranges from `calibration` input batches.

    uint8 activations with int8 weights and no range reduction is onnxruntime's recommendation for x86
    CPUs with VNNI. Only convolutions and matrix products are quantised, and neither the depthwise ones nor
    the one reading the image. Measured on w600k_mbf (docs/benchmarks.md): int8 depthwise kernels and Q/DQ
    pairs around every PRelu and residual Add made a whole-graph QDQ model ~50% slower than float; an int8
    first convolution cost agreement with the original (median cosine 0.96, worst face 0.77, against 0.99
    and 0.98 with it in float).
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    if not calibration:
        raise GraphRewriteError("static quantisation needs at least one calibration input")
    input_name = model.graph.input[0].name

    class Batches(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self._batches: Iterator[np.ndarray] = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._batches, None)
            return None if batch is None else {input_name: batch}

    with tempfile.TemporaryDirectory(prefix="lfr-quantise-") as work:
        float_file, prepared_file, quantised_file = (Path(work) / n for n in ("f.onnx", "p.onnx", "q.onnx"))
        onnx.save(_with_opset(model, PER_CHANNEL_OPSET), str(float_file))
        quant_pre_process(str(float_file), str(prepared_file), skip_symbolic_shape=True)
        prepared = named_for_insightface(onnx.load(str(prepared_file)))
        onnx.save(prepared, str(prepared_file))
        quantize_static(
            str(prepared_file),
            str(quantised_file),
            Batches(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            per_channel=True,
            reduce_range=False,
            calibrate_method=CalibrationMethod.MinMax,
            op_types_to_quantize=QUANTISED_OPS,
            nodes_to_exclude=depthwise_convolutions(prepared) + input_convolutions(prepared),
        )
        quantised = onnx.load(str(quantised_file))
    return named_for_insightface(quantised)
