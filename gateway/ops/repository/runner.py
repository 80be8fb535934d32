"""Triton Python-backend model that runs model.onnx with onnxruntime (embedded configuration).

This file is copied to model_repository/<model>/1/model.py by the prepare step; it imports
nothing from facegate so it runs in any Python-backend environment (the install step imports
it too, for save_optimized_model and host_fingerprint, so both sides agree on the files). The
embedded Triton has no ONNX Runtime backend, so this stands in for it: CUDA when
onnxruntime-gpu is installed and the instance group is KIND_GPU, CPU otherwise. Requests that
the dynamic batcher groups together run as one onnxruntime call.

Session settings come from the config's parameters (configs/embedded.pbtxt):
- intra_op_num_threads, inter_op_num_threads: onnxruntime's thread pools (0 = its default);
- allow_spinning: "0" turns off the pools' spin-wait between runs (intra- and inter-op);
  onnxruntime's default "1" keeps a core busy after each run, which on a small host steals it
  from the other models' stubs and the gateway;
- use_optimized_model: "1" loads model.opt.onnx (saved by the install step on this host at
  onnxruntime's ORT_ENABLE_ALL level) with graph optimisation off, when its stamp says it was
  made from this model.onnx by this onnxruntime on a CPU like this one; anything else loads
  model.onnx and optimises it at load, as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np
import onnxruntime as ort

try:
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported by the install step, outside Triton, for the helpers below
    pb_utils = None

MODEL_FILE = "model.onnx"
OPTIMIZED_FILE = "model.opt.onnx"
# Initialisers go to a file of their own: onnxruntime maps it instead of parsing a protobuf
# of the model's size, and copies nothing it does not have to.
OPTIMIZED_DATA_FILE = "model.opt.onnx.data"
OPTIMIZED_STAMP_FILE = "model.opt.json"
STAMP_FORMAT = 1
# The config parameter install.py writes with the sha256 of model.onnx (spec.MODEL_SHA256_PARAMETER).
MODEL_SHA256_PARAMETER = "facegate_model_sha256"
DEFAULT_PARAMETERS = {
    "intra_op_num_threads": "0",
    "inter_op_num_threads": "0",
    "allow_spinning": "1",
    "use_optimized_model": "0",
}
# CPU features that decide which kernels and blocked layouts (NCHWc block size) onnxruntime
# picks when it optimises at ORT_ENABLE_ALL; anything else in /proc/cpuinfo may differ.
_CPU_FLAGS = re.compile(r"^(sse\w*|ssse3|avx\w*|fma\w*|f16c|amx\w*|vnni\w*|asimd\w*|sve\w*|neon)$")


def host_fingerprint() -> str:
    """A short hash of this host's architecture and kernel-relevant CPU features.

    onnxruntime warns that a model saved at ORT_ENABLE_ALL may hold layouts for the CPU it
    was made on; the stamp carries this, and a host whose fingerprint differs loads the
    original instead.
    """
    flags: set[str] = set()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            key, _, value = line.partition(":")
            if key.strip() in ("flags", "Features"):
                flags = {f for f in value.split() if _CPU_FLAGS.match(f)}
                break
    text = platform.machine() + ":" + " ".join(sorted(flags))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def session_options(params: Mapping[str, str]) -> ort.SessionOptions:
    """onnxruntime SessionOptions from the config parameters (DEFAULT_PARAMETERS for absent keys)."""
    values = {**DEFAULT_PARAMETERS, **params}
    spinning = values["allow_spinning"]
    if spinning not in ("0", "1"):
        raise ValueError(f'parameter allow_spinning must be "0" or "1", not {spinning!r}')
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(values["intra_op_num_threads"])
    options.inter_op_num_threads = int(values["inter_op_num_threads"])
    options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    options.add_session_config_entry("session.inter_op.allow_spinning", spinning)
    return options


def _stamp(model_sha256: str, model_bytes: int) -> dict[str, Any]:
    return {
        "format": STAMP_FORMAT,
        "model_sha256": model_sha256,
        "model_bytes": model_bytes,
        "onnxruntime": ort.__version__,
        "host": host_fingerprint(),
        "level": "ORT_ENABLE_ALL",
        "provider": "CPUExecutionProvider",
    }


def remove_optimized_model(version_dir: str) -> None:
    """Remove the stamp first, so a half-removed set is never taken as valid."""
    for name in (OPTIMIZED_STAMP_FILE, OPTIMIZED_FILE, OPTIMIZED_DATA_FILE):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(version_dir, name))


def save_optimized_model(version_dir: str, model_sha256: str, file_mode: int = 0o644) -> None:
    """Optimise version_dir/model.onnx once, at ORT_ENABLE_ALL on the CPU, and save it beside.

    Writes model.opt.onnx with its initialisers in model.opt.onnx.data, then the stamp
    model.opt.json (last: without it the pair is never used). `model_sha256` is the sha256 of
    model.onnx, as the config records it; the runner compares the two instead of hashing.
    """
    remove_optimized_model(version_dir)
    source = os.path.join(version_dir, MODEL_FILE)
    scratch = tempfile.mkdtemp(dir=version_dir, prefix=".optimize-")
    try:
        options = ort.SessionOptions()
        options.log_severity_level = (
            3  # the hardware-specific-layout warning is what the stamp is for
        )
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = os.path.join(scratch, OPTIMIZED_FILE)
        options.add_session_config_entry(
            "session.optimized_model_external_initializers_file_name", OPTIMIZED_DATA_FILE
        )
        ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        data = os.path.join(scratch, OPTIMIZED_DATA_FILE)
        if not os.path.exists(data):
            # No initialiser reached onnxruntime's size threshold (a tiny model): the graph
            # refers to no data file, and an empty one keeps the set the same for every model.
            open(data, "wb").close()
        for name in (OPTIMIZED_DATA_FILE, OPTIMIZED_FILE):
            os.chmod(os.path.join(scratch, name), file_mode)
            os.replace(os.path.join(scratch, name), os.path.join(version_dir, name))
        stamp = _stamp(model_sha256, os.path.getsize(source))
        partial = os.path.join(scratch, OPTIMIZED_STAMP_FILE)
        with open(partial, "w", encoding="utf-8") as handle:
            json.dump(stamp, handle, indent=2)
        os.chmod(partial, file_mode)
        os.replace(partial, os.path.join(version_dir, OPTIMIZED_STAMP_FILE))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def optimized_model_refusal(version_dir: str, model_sha256: str) -> str:
    """Why the saved optimised model cannot serve here ('' when it can).

    Cheap checks only (the stamp, two stats): a load must not re-read or re-hash the model.
    """
    try:
        with open(os.path.join(version_dir, OPTIMIZED_STAMP_FILE), encoding="utf-8") as handle:
            stamp = json.load(handle)
        model_bytes = os.path.getsize(os.path.join(version_dir, MODEL_FILE))
        present = all(
            os.path.isfile(os.path.join(version_dir, n))
            for n in (OPTIMIZED_FILE, OPTIMIZED_DATA_FILE)
        )
    except (OSError, ValueError) as exc:
        return f"no usable stamp ({exc.__class__.__name__})"
    if not present:
        return "the optimised files are incomplete"
    if not model_sha256:
        return "the config records no model sha256 to compare with"
    expected = _stamp(model_sha256, model_bytes)
    different = sorted(k for k in expected if stamp.get(k) != expected[k])
    return f"stamp differs in {', '.join(different)}" if different else ""


class TritonPythonModel:
    """Serves the model.onnx that sits next to this file."""

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        self._inputs = [tensor["name"] for tensor in config["input"]]
        self._outputs = [tensor["name"] for tensor in config["output"]]
        self._batched = int(config.get("max_batch_size", 0)) > 0
        params = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        options = session_options(params)
        # The CPU arena stays on (onnxruntime's default, as in process): each model runs in its
        # own stub process, which ends on unload and so gives all of its memory back.
        providers: list[Any] = ["CPUExecutionProvider"]
        if (
            args.get("model_instance_kind") == "GPU"
            and "CUDAExecutionProvider" in ort.get_available_providers()
        ):
            device = int(args.get("model_instance_device_id", "0"))
            providers = [("CUDAExecutionProvider", {"device_id": device}), "CPUExecutionProvider"]
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        path = os.path.join(version_dir, MODEL_FILE)
        if params.get("use_optimized_model", DEFAULT_PARAMETERS["use_optimized_model"]) == "1":
            # The saved graph is optimised for the CPU provider; CUDA optimises its own way.
            refusal = (
                "the CUDA provider optimises its own graph"
                if len(providers) > 1
                else optimized_model_refusal(version_dir, params.get(MODEL_SHA256_PARAMETER, ""))
            )
            if refusal:
                pb_utils.Logger.log_warn(f"{config.get('name')}: loading {MODEL_FILE} ({refusal})")
            else:
                path = os.path.join(version_dir, OPTIMIZED_FILE)
                options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self._session = ort.InferenceSession(path, options, providers=providers)

    def _run(self, feeds: dict[str, Any]) -> list[Any]:
        results = self._session.run(self._outputs, feeds)
        # onnxruntime's outputs are already C-contiguous: asarray copies nothing.
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
