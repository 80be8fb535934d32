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
  model.onnx and optimises it at load, as before;
- execution_provider: "cpu" (default) or "openvino": onnxruntime's OpenVINO execution provider
  (FP32), which the install chose for this model on this host after a timed A/B whose outputs
  equalled the CPU provider's (ops/repository/providers.py). OpenVINO's onnxruntime is another
  build of the same `onnxruntime` module (PyPI onnxruntime-openvino), kept out of the venv's
  site-packages in its own folder, openvino_path, which goes first on sys.path of this stub
  process only. Where that folder or its provider is missing, the model loads on the CPU
  provider, with a warning.

Run as a script (`python runner.py probe DIR`), it loads DIR/model.onnx the way a stub would
with DIR/params.json, runs DIR/feeds.npz and writes DIR/outputs.npz and DIR/probe.json: the
install's A/B runs OpenVINO's side this way, in a process of its own.
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
import sys
import tempfile
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

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
    "execution_provider": "cpu",
    "openvino_path": "",
}
OPENVINO = "OpenVINOExecutionProvider"
CPU = "CPUExecutionProvider"
# Probe: untimed runs first (OpenVINO compiles for each new input shape on its first run).
PROBE_WARMUP_RUNS = 2
# CPU features that decide which kernels and blocked layouts (NCHWc block size) onnxruntime
# picks when it optimises at ORT_ENABLE_ALL; anything else in /proc/cpuinfo may differ.
_CPU_FLAGS = re.compile(r"^(sse\w*|ssse3|avx\w*|fma\w*|f16c|amx\w*|vnni\w*|asimd\w*|sve\w*|neon)$")


def load_onnxruntime(params: Mapping[str, str]) -> tuple[Any, str]:
    """The onnxruntime module this process should use, and why it is not OpenVINO's ('' if it is).

    For execution_provider "openvino", OpenVINO's build is imported from openvino_path, which
    only works while no onnxruntime has been imported in this process yet.
    """
    values = {**DEFAULT_PARAMETERS, **params}
    provider = values["execution_provider"]
    if provider not in ("cpu", "openvino"):
        raise ValueError(
            f'parameter execution_provider must be "cpu" or "openvino", not {provider!r}'
        )
    folder = values["openvino_path"]
    refusal = ""
    if provider == "openvino":
        if "onnxruntime" in sys.modules:
            refusal = "onnxruntime was already imported in this process"
        elif not folder or not os.path.isfile(os.path.join(folder, "onnxruntime", "__init__.py")):
            refusal = f"OpenVINO's onnxruntime is not installed in {folder or '(no folder)'}"
        else:
            sys.path.insert(0, folder)
    import onnxruntime

    if (
        provider == "openvino"
        and not refusal
        and OPENVINO not in onnxruntime.get_available_providers()
    ):
        refusal = f"the onnxruntime in {folder} has no {OPENVINO}"
    return onnxruntime, refusal


def _ort() -> Any:
    """The onnxruntime already imported, or the venv's own (the install step's helpers)."""
    return sys.modules.get("onnxruntime") or load_onnxruntime({})[0]


def execution_providers(params: Mapping[str, str]) -> list[Any]:
    """The provider list for OpenVINO's build: FP32 on the CPU, the session's intra-op threads."""
    values = {**DEFAULT_PARAMETERS, **params}
    options = {"device_type": "CPU", "precision": "FP32"}
    if int(values["intra_op_num_threads"]) > 0:
        options["num_of_threads"] = values["intra_op_num_threads"]
    return [(OPENVINO, options), CPU]


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


def session_options(params: Mapping[str, str]) -> Any:
    """onnxruntime SessionOptions from the config parameters (DEFAULT_PARAMETERS for absent keys)."""
    ort = _ort()
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
        "onnxruntime": _ort().__version__,
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
    ort = _ort()
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
        ort, refusal = load_onnxruntime(params)
        if refusal:
            pb_utils.Logger.log_warn(
                f"{config.get('name')}: the CPU provider instead of OpenVINO ({refusal})"
            )
        options = session_options(params)
        # The CPU arena stays on (onnxruntime's default, as in process): each model runs in its
        # own stub process, which ends on unload and so gives all of its memory back.
        providers: list[Any] = [CPU]
        if params.get("execution_provider") == "openvino" and not refusal:
            providers = execution_providers(params)
        elif (
            args.get("model_instance_kind") == "GPU"
            and "CUDAExecutionProvider" in ort.get_available_providers()
        ):
            device = int(args.get("model_instance_device_id", "0"))
            providers = [("CUDAExecutionProvider", {"device_id": device}), CPU]
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        path = os.path.join(version_dir, MODEL_FILE)
        if params.get("use_optimized_model", DEFAULT_PARAMETERS["use_optimized_model"]) == "1":
            # The saved graph is optimised for the CPU provider; CUDA and OpenVINO optimise
            # their own way.
            refusal = (
                "another provider optimises its own graph"
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


def probe(folder: str, runs: int) -> None:
    """Load folder/model.onnx as a stub would with folder/params.json; run and time feeds.npz.

    feeds.npz holds feed sets as "SET/INPUT" arrays. Writes outputs.npz ("SET/OUTPUT_INDEX")
    and probe.json: the providers the session really runs on, why it is not OpenVINO's build
    (refusal), an error where loading or running failed, and per feed set the median ms of
    `runs` timed runs after PROBE_WARMUP_RUNS untimed ones.
    """
    with open(os.path.join(folder, "params.json"), encoding="utf-8") as handle:
        params = json.load(handle)
    ort, refusal = load_onnxruntime(params)
    providers = (
        execution_providers(params)
        if params.get("execution_provider") == "openvino" and not refusal
        else [CPU]
    )
    options = session_options(params)
    options.log_severity_level = 4
    result: dict[str, Any] = {"refusal": refusal, "onnxruntime": ort.__version__}
    try:
        session = ort.InferenceSession(
            os.path.join(folder, MODEL_FILE), options, providers=providers
        )
        result["providers"] = session.get_providers()
        feed_sets: dict[int, dict[str, Any]] = {}
        with np.load(os.path.join(folder, "feeds.npz")) as archive:
            for key in archive.files:
                index, _, name = key.partition("/")
                feed_sets.setdefault(int(index), {})[name] = archive[key]
        outputs: dict[str, Any] = {}
        medians = []
        for index in sorted(feed_sets):
            feeds = feed_sets[index]
            for _ in range(PROBE_WARMUP_RUNS):
                results = session.run(None, feeds)
            outputs.update({f"{index}/{k}": np.asarray(r) for k, r in enumerate(results)})
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                session.run(None, feeds)
                times.append((time.perf_counter() - started) * 1000)
            medians.append(float(np.median(times)))
        np.savez(os.path.join(folder, "outputs.npz"), **outputs)
        result["median_ms"] = medians
    except Exception as exc:  # onnxruntime's and OpenVINO's own types: the caller falls back
        # onnxruntime's messages run over many lines of C++ signature; the end says what failed.
        text = " ".join(str(exc).split())
        result["error"] = f"{exc.__class__.__name__}: ...{text[-240:]}"
    with open(os.path.join(folder, "probe.json"), "w", encoding="utf-8") as handle:
        json.dump(result, handle)


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "probe":
    # This file's folder (the script's, first on sys.path) holds facegate's modules, which
    # must not shadow anything onnxruntime imports.
    del sys.path[0]
    probe(sys.argv[2], int(sys.argv[3]))
