"""Triton Python-backend model that runs model.onnx with onnxruntime (embedded configuration).

This file is copied to model_repository/<model>/1/model.py by the prepare step; it imports
nothing from facegate so it runs in any Python-backend environment. The embedded Triton has
no ONNX Runtime backend, so this stands in for it: CUDA when onnxruntime-gpu is installed and
the instance group is KIND_GPU, CPU otherwise. Requests that the dynamic batcher groups
together run as one onnxruntime call.
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Serves the model.onnx that sits next to this file."""

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        self._inputs = [tensor["name"] for tensor in config["input"]]
        self._outputs = [tensor["name"] for tensor in config["output"]]
        self._batched = int(config.get("max_batch_size", 0)) > 0
        params = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(params.get("intra_op_num_threads", "0"))
        # The CPU arena stays on (onnxruntime's default, as in process): each model runs in its
        # own stub process, which ends on unload and so gives all of its memory back.
        providers: list[Any] = ["CPUExecutionProvider"]
        if (
            args.get("model_instance_kind") == "GPU"
            and "CUDAExecutionProvider" in ort.get_available_providers()
        ):
            device = int(args.get("model_instance_device_id", "0"))
            providers = [("CUDAExecutionProvider", {"device_id": device}), "CPUExecutionProvider"]
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        self._session = ort.InferenceSession(path, options, providers=providers)

    def _run(self, feeds: dict[str, Any]) -> list[Any]:
        results = self._session.run(self._outputs, feeds)
        return [np.ascontiguousarray(r) for r in results]

    def execute(self, requests: list[Any]) -> list[Any]:
        arrays = [
            {
                name: pb_utils.get_input_tensor_by_name(request, name).as_numpy()
                for name in self._inputs
            }
            for request in requests
        ]
        if self._batched and len(requests) > 1:
            return self._execute_together(arrays)
        responses = []
        for feeds in arrays:
            try:
                outputs = self._run(feeds)
                tensors = [
                    pb_utils.Tensor(n, o) for n, o in zip(self._outputs, outputs, strict=True)
                ]
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
            except Exception as exc:  # one bad request must not fail its neighbours
                responses.append(pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc))))
        return responses

    def _execute_together(self, arrays: list[dict[str, Any]]) -> list[Any]:
        sizes = [feeds[self._inputs[0]].shape[0] for feeds in arrays]
        joined = {name: np.concatenate([feeds[name] for feeds in arrays]) for name in self._inputs}
        try:
            outputs = self._run(joined)
        except Exception as exc:
            error = pb_utils.TritonError(str(exc))
            return [pb_utils.InferenceResponse(error=error) for _ in arrays]
        bounds = np.cumsum([0, *sizes])
        return [
            pb_utils.InferenceResponse(
                output_tensors=[
                    pb_utils.Tensor(n, o[lo:hi])
                    for n, o in zip(self._outputs, outputs, strict=True)
                ]
            )
            for lo, hi in itertools.pairwise(bounds)
        ]

    def finalize(self) -> None:
        self._session = None
