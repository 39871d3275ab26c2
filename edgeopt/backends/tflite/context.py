"""The lowering context: ONNX tensor names -> TFLite tensors, with each tensor's layout, dtype and quantization."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import onnx
from onnx import helper

from edgeopt.backends.tflite.flatbuffer import ModelWriter, QuantSpec, schema
from edgeopt.backends.tflite.graph import OnnxGraph
from edgeopt.backends.tflite.layout import Perm, identity, physical_shape, same_memory_order, transpose_between
from edgeopt.backends.tflite.quant import QConst, QParams, qparams_of

Precision = Literal["fp32", "fp16", "dynamic_int8", "int8"]


@dataclass(frozen=True)
class ConvertOptions:
    """How to lower: weight/activation precision, the layout and dtype of model I/O, the batch and input shapes."""

    precision: Precision = "fp32"
    io_layout: Literal["onnx", "nhwc"] = "onnx"
    io_dtype: Literal["float32", "int8"] = "float32"
    batch: int = 1
    input_shapes: tuple[tuple[str, tuple[int, ...]], ...] = ()
    #: dynamic_int8 quantizes weights with at least this many elements (TFLite's converter uses 1024)
    min_weight_elements: int = 1024


@dataclass(eq=False)
class Value:
    """One ONNX tensor as lowered: a compile-time constant, or TFLite tensors holding it in one or more layouts."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    perm: Perm = ()
    const: np.ndarray | None = None
    qconst: QConst | None = None
    quant: QParams | None = None
    tensors: dict[Perm, int] = field(default_factory=dict)
    float_tensors: dict[Perm, int] = field(default_factory=dict)

    @property
    def is_const(self) -> bool:
        return self.const is not None


def node_attrs(node: onnx.NodeProto) -> dict[str, Any]:
    """A node's attributes as plain Python values (strings decoded)."""
    out: dict[str, Any] = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def node_label(node: onnx.NodeProto) -> str:
    """How a node is named in messages."""
    return node.name or f"<{node.op_type} -> {node.output[0] if node.output else '?'}>"


class LoweringContext:
    """State of one ONNX -> TFLite lowering; op lowerings read values and emit TFLite operators through it."""

    def __init__(self, graph: OnnxGraph, options: ConvertOptions) -> None:
        self.graph = graph
        self.options = options
        self.writer = ModelWriter()
        self.values: dict[str, Value] = {}
        self.done: set[int] = set()
        self.quantized = any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in graph.nodes)
        self._consts: dict[tuple[str, Perm, str], int] = {}
        self.s = schema()

    # ---- values
    def value(self, name: str) -> Value:
        """The lowered value of an ONNX tensor name."""
        if name not in self.values:
            arr = self.graph.constants[name]
            self.values[name] = Value(name, tuple(arr.shape), str(arr.dtype), identity(arr.ndim), const=arr)
        return self.values[name]

    def is_const(self, name: str) -> bool:
        return bool(name) and (name in self.graph.constants or (name in self.values and self.values[name].is_const))

    def const(self, name: str) -> np.ndarray:
        """Compile-time value (dequantized for constants behind DequantizeLinear)."""
        c = self.value(name).const
        if c is None:
            raise KeyError(name)
        return c

    def shape(self, name: str) -> tuple[int, ...]:
        if name in self.values:
            return self.values[name].shape
        return self.graph.shape(name)

    def alias(self, name: str, value: Value) -> None:
        """Let ONNX tensor `name` stand for an already lowered value (Identity, free Transpose, Q/DQ folding)."""
        self.values[name] = value

    def new_value(
        self,
        name: str,
        perm: Perm,
        dtype: str = "float32",
        quant: QParams | None = None,
        shape: tuple[int, ...] | None = None,
    ) -> tuple[Value, int]:
        """Create the TFLite tensor holding ONNX tensor `name` in layout `perm` and register it."""
        logical = shape if shape is not None else self.graph.shape(name)
        v = Value(name, logical, dtype, perm, quant=quant)
        spec = quant.spec(perm) if quant else None
        idx = self.writer.add_tensor(name, physical_shape(logical, perm), dtype, quant=spec)
        v.tensors[perm] = idx
        if dtype == "float32":
            v.float_tensors[perm] = idx
        self.values[name] = v
        return v, idx

    def scratch(self, name: str, shape: tuple[int, ...], dtype: str = "float32", quant: QuantSpec | None = None) -> int:
        """A TFLite tensor that is no ONNX tensor (intermediate of a decomposition)."""
        return self.writer.add_tensor(name, shape, dtype, quant=quant)

    # ---- operators
    def emit(self, op: str, inputs: list[int], outputs: list[int], options: Any = None, version: int = 1) -> None:
        """Append a TFLite builtin operator."""
        self.writer.add_op(op, inputs, outputs, options, version=version)

    def opts(self, kind: str, **fields: Any) -> Any:
        """A schema options object, e.g. opts('Conv2DOptions', strideW=1)."""
        obj = getattr(self.s, kind + "T")()
        for k, v in fields.items():
            setattr(obj, k, v)
        return obj

    def activation(self, name: str) -> int:
        return int(getattr(self.s.ActivationFunctionType, name))

    # ---- constants
    def const_tensor(
        self,
        array: np.ndarray,
        name: str,
        dtype: str | None = None,
        quant: QuantSpec | None = None,
        weight: bool = False,
    ) -> int:
        """A constant tensor; with precision fp16, float weights are stored as fp16 behind a DEQUANTIZE."""
        dtype = dtype or str(array.dtype)
        if dtype == "float64":
            dtype = "float32"
        array = np.require(array, dtype=np.dtype(dtype), requirements="C")  # keeps 0-d arrays 0-d
        key = (array.tobytes().hex() if array.size <= 16 else _digest(array), tuple(array.shape), dtype + repr(quant))
        if key in self._consts:
            return self._consts[key]
        if weight and dtype == "float32" and self.options.precision == "fp16" and _fits_fp16(array):
            half = self.writer.add_tensor(name + "_fp16", array.shape, "float16", array.astype(np.float16))
            idx = self.writer.add_tensor(name, array.shape, "float32")
            self.emit("DEQUANTIZE", [half], [idx])
        else:
            idx = self.writer.add_tensor(name, array.shape, dtype, array, quant)
        self._consts[key] = idx
        return idx

    def int32_const(self, values: list[int] | np.ndarray, name: str) -> int:
        return self.const_tensor(np.asarray(values, np.int32), name, "int32")

    # ---- tensors in a layout
    def tensor(self, name: str, perm: Perm | None = None) -> int:
        """The TFLite tensor holding `name` in layout `perm` (default: where it lives), moved there on first use."""
        v = self.value(name)
        if v.is_const:
            perm = perm if perm is not None else identity(len(v.shape))
            assert v.const is not None
            data = np.transpose(v.const, perm) if v.const.ndim else v.const
            return self.const_tensor(data, name, weight=v.const.size > 1)
        perm = v.perm if perm is None else perm
        if perm not in v.tensors:
            v.tensors[perm] = self._relayout(v, v.tensors[v.perm], v.perm, perm, v.dtype, v.quant)
            if v.dtype == "float32":
                v.float_tensors[perm] = v.tensors[perm]
        return v.tensors[perm]

    def float_tensor(self, name: str, perm: Perm | None = None) -> int:
        """Like `tensor` but float32: int8 values are dequantized (once per layout)."""
        v = self.value(name)
        if v.is_const:
            if v.const is not None and v.const.dtype != np.float32 and v.const.dtype.kind == "f":
                v.const = v.const.astype(np.float32)
            return self.tensor(name, perm)
        if v.quant is None:
            return self.tensor(name, perm)
        perm = v.perm if perm is None else perm
        if perm not in v.float_tensors:
            if v.perm not in v.float_tensors:
                out = self.writer.add_tensor(name + "_dequant", physical_shape(v.shape, v.perm), "float32")
                self.emit("DEQUANTIZE", [v.tensors[v.perm]], [out])
                v.float_tensors[v.perm] = out
            if perm != v.perm:
                v.float_tensors[perm] = self._relayout(v, v.float_tensors[v.perm], v.perm, perm, "float32", None)
        return v.float_tensors[perm]

    def _relayout(self, v: Value, src: int, src_perm: Perm, dst_perm: Perm, dtype: str, quant: QParams | None) -> int:
        shape = physical_shape(v.shape, dst_perm)
        suffix = "_nhwc" if dst_perm == (0, 2, 3, 1) else "_" + "".join(map(str, dst_perm))
        out = self.writer.add_tensor(v.name + suffix, shape, dtype, quant=quant.spec(dst_perm) if quant else None)
        if same_memory_order(v.shape, src_perm, dst_perm):
            self.emit_reshape(src, out, shape)
        else:
            perm = self.int32_const(list(transpose_between(src_perm, dst_perm)), v.name + "_perm")
            self.emit("TRANSPOSE", [src, perm], [out], self.opts("TransposeOptions"))
        return out

    def emit_reshape(self, src: int, out: int, shape: tuple[int, ...]) -> None:
        shape_t = self.int32_const(list(shape), "shape")
        self.emit("RESHAPE", [src, shape_t], [out], self.opts("ReshapeOptions", newShape=list(shape)))

    def with_rank(self, name: str, rank: int) -> str:
        """Name of `name` with leading 1-dims added up to `rank` (ONNX broadcasting made explicit for TFLite)."""
        v = self.value(name)
        if len(v.shape) >= rank:
            return name
        shape = (1,) * (rank - len(v.shape)) + v.shape
        alias = f"{name}_rank{rank}"
        if alias in self.values:
            return alias
        if v.is_const:
            assert v.const is not None
            qc = None
            if v.qconst is not None:
                p = v.qconst.params
                axis = None if p.axis is None else p.axis + rank - len(v.shape)
                qc = QConst(v.qconst.values.reshape(shape), QParams(p.scale, p.zero_point, axis))
            self.values[alias] = Value(alias, shape, v.dtype, identity(rank), const=v.const.reshape(shape), qconst=qc)
            return alias
        src = self.tensor(name, identity(len(v.shape)))
        out = Value(alias, shape, v.dtype, identity(rank), quant=v.quant)
        idx = self.writer.add_tensor(alias, shape, v.dtype, quant=v.quant.spec() if v.quant else None)
        self.emit_reshape(src, idx, shape)
        out.tensors[out.perm] = idx
        if v.dtype == "float32":
            out.float_tensors[out.perm] = idx
        self.values[alias] = out
        return alias

    # ---- quantization
    def quant_output(self, name: str) -> QParams | None:
        """Int8 parameters for the output `name` when every consumer quantizes it alike (the Q then folds away)."""
        if not self.quantized or name in self.graph.outputs:
            return None
        users = self.graph.consumers.get(name, [])
        if not users or any(u.op_type != "QuantizeLinear" or u.input[0] != name for u in users):
            return None
        params = {qparams_of(u, self.graph.constants, len(self.shape(name)))[0] for u in users}
        if len(params) != 1:
            return None
        (p,) = params
        return p if p.per_tensor else None

    def set_int8(self, name: str, perm: Perm, produced: int, have: QParams, want: QParams) -> None:
        """Register int8 tensor `produced` (params `have`) as `name`, requantizing to `want` if they differ."""
        if have == want:
            v = Value(name, self.graph.shape(name), "int8", perm, quant=want)
            v.tensors[perm] = produced
            self.values[name] = v
            return
        _, out = self.new_value(name, perm, "int8", want)
        self.emit("QUANTIZE", [produced], [out], self.opts("QuantizeOptions"))

    def _int8_const(self, v: Value) -> tuple[np.ndarray, QParams]:
        from edgeopt.backends.tflite.quant import quantize_asymmetric

        assert v.const is not None
        if v.qconst is not None and v.qconst.params.per_tensor:
            return v.qconst.values, v.qconst.params
        return quantize_asymmetric(v.const.astype(np.float32))

    def int8_params(self, name: str) -> QParams | None:
        """The per-tensor int8 parameters `name` has (or would get, for a constant) as an int8 operand."""
        v = self.value(name)
        if v.is_const:
            return self._int8_const(v)[1]
        return v.quant

    def int8_operand(self, name: str, perm: Perm) -> tuple[int, QParams]:
        """An int8 tensor for an operand of an int8 op: the value itself, or a constant quantized per tensor."""
        v = self.value(name)
        if v.is_const:
            q, p = self._int8_const(v)
            data = np.transpose(q, perm) if q.ndim else q
            return self.const_tensor(data, name + "_q", "int8", p.spec()), p
        if v.quant is None:
            raise KeyError(name)
        return self.tensor(name, perm), v.quant


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(array.tobytes()).hexdigest()


def _fits_fp16(array: np.ndarray) -> bool:
    """Whether float16 can hold these values (a mask constant of -3.4e38 would become -inf, then NaN)."""
    return bool(array.size == 0 or np.max(np.abs(array)) <= float(np.finfo(np.float16).max))
