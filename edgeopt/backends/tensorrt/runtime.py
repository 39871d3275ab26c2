"""Running a TensorRT engine: torch CUDA tensors for the I/O buffers, one CUDA stream, CUDA events for timing."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeopt.artifacts.base import TensorSpec
from edgeopt.backends.base import Runner
from edgeopt.backends.tensorrt.artifact import TrtEngine
from edgeopt.errors import EdgeoptError
from edgeopt.evaluate.latency import SelfTimed, Timeable

#: the clock name of latencies measured on the GPU between CUDA events
CUDA_EVENTS = "cuda-events"


class TrtRunner(Runner):
    """A deserialized engine with one execution context (TensorRT 10 name-based I/O, execute_async_v3)."""

    def __init__(self, engine: TrtEngine, device: int = 0) -> None:
        import tensorrt as trt
        import torch

        assert engine.path is not None
        self._trt, self._torch, self.device = trt, torch, torch.device("cuda", device)
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(engine.path.read_bytes())
        if self.engine is None:
            raise EdgeoptError(f"TensorRT {trt.__version__} cannot deserialize {engine.path.name}",
                               "rebuild the engine on this machine (engines are tied to the TensorRT version and GPU)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if n not in self.inputs]
        self.stream = torch.cuda.Stream(device=self.device)
        self.manifest = engine.manifest
        first = self.inputs[0] if self.inputs else None
        if first is not None and self.engine.get_tensor_shape(first)[0] == -1:
            self.max_batch = int(self.engine.get_tensor_profile_shape(first, 0)[2][0])
        elif first is not None:
            self.max_batch = int(self.engine.get_tensor_shape(first)[0])

    def _dtype(self, name: str) -> Any:
        return np.dtype(self._trt.nptype(self.engine.get_tensor_dtype(name)))

    def input_specs(self) -> list[TensorSpec]:
        specs = []
        for name in self.inputs:
            shape = tuple(d if d >= 0 else ("batch" if i == 0 else None) for i, d in
                          enumerate(self.engine.get_tensor_shape(name)))
            specs.append(TensorSpec(name, shape, self._dtype(name).name))
        return specs

    def _bind(self, inputs: dict[str, np.ndarray]) -> list[Any]:
        """Copy inputs to the GPU, allocate outputs, set every tensor address; returns the output tensors (all of
        them stay referenced until the next bind)."""
        torch = self._torch
        self._keep = []
        outs = []
        with torch.cuda.stream(self.stream):  # copies and allocations ordered with the engine's own stream
            for name in self.inputs:
                t = torch.from_numpy(np.ascontiguousarray(inputs[name], dtype=self._dtype(name))).to(self.device)
                self.context.set_input_shape(name, tuple(t.shape))
                self.context.set_tensor_address(name, t.data_ptr())
                self._keep.append(t)
            for name in self.outputs:
                shape = tuple(self.context.get_tensor_shape(name))
                out = torch.empty(shape, dtype=getattr(torch, self._dtype(name).name), device=self.device)
                self.context.set_tensor_address(name, out.data_ptr())
                outs.append(out)
        self._keep += outs  # the context writes there until the next bind: the buffers must outlive this call
        return outs

    def _execute(self) -> None:
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise EdgeoptError("TensorRT execution failed (see its log)", "check the input shapes against the profile")

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        outs = self._bind(inputs)
        self._execute()
        self.stream.synchronize()
        return [o.cpu().numpy() for o in outs]

    def latency_call(self, inputs: dict[str, np.ndarray]) -> Timeable:
        """The engine's GPU time per execution, between CUDA events on its stream, with the inputs copied to the
        GPU once beforehand: what the latency harness records for this build (clock "cuda-events"). A batch larger
        than the engine's profile allows is run whole, in slices, on the host clock instead."""
        n = len(next(iter(inputs.values())))
        if self.max_batch is not None and n > self.max_batch:
            return super().latency_call(inputs)
        torch = self._torch
        self._bind(inputs)

        def once() -> float:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record(self.stream)
            self._execute()
            end.record(self.stream)
            end.synchronize()
            return float(start.elapsed_time(end))

        return SelfTimed(once, CUDA_EVENTS)

    def time_ms(self, inputs: dict[str, np.ndarray], iters: int = 100, warmup: int = 10) -> list[float]:
        """GPU time of each of `iters` executions (inputs already on the GPU), measured with CUDA events."""
        call = self.latency_call(inputs)
        assert isinstance(call, SelfTimed)
        for _ in range(warmup):
            call.fn()
        return [call.fn() for _ in range(iters)]

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": "tensorrt",
            "version": self._trt.__version__,
            "gpu": self._torch.cuda.get_device_name(self.device),
            "precision": self.manifest.precision if self.manifest else None,
        }
