"""`facegate bench --cold`: `facegate serve` to ready, and the swapper's cold load.

Both measured on the same synthetic repository in one run, for two sets of embedded runner
settings that alternate round by round (so drifting background load lands on both):
- `before`: the runner as it was before issue 12: model.onnx optimised at every load,
  onnxruntime's default threads and spin-wait;
- `installed`: the configs as `facegate models ...` writes them on this host (sessions.py),
  loading the optimised model the install saved (runner.py).
Serve to ready: from starting `facegate serve` (a child process) until its /health/ready
answers 200. Swapper cold load: on one embedded Triton, from the model-control load call
until Triton reports the swapper ready (what gateway/service/swapper_lifecycle.py waits
for), then its first inference, then an unload.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from gateway.ops.bench.options import BenchError, BenchOptions
from gateway.ops.repository.configs import EmbeddedSession
from gateway.ops.repository.synthetic import Profile
from gateway.ops.servers.ports import free_port, free_ports
from gateway.ops.servers.stack import stop_child
from gateway.triton import spec

log = logging.getLogger(__name__)
BEGIN = "<!-- facegate bench --cold: generated block begin -->"
END = "<!-- facegate bench --cold: generated block end -->"
HEADING = "## Cold start (issue 12)"
VARIANTS = ("before", "installed")
MODELS = (spec.DETECTOR, spec.RECOGNIZER, spec.SWAPPER)
READY_TIMEOUT_S = 300.0
POLL_S = 0.05
# The runner as it was: threads and spin-wait at onnxruntime's defaults, model.onnx optimised
# at each load.
BEFORE = EmbeddedSession(
    intra_op_threads=0, inter_op_threads=0, allow_spinning=True, use_optimized_model=False
)


@dataclass
class ColdResults:
    """Seconds per variant, one entry per round."""

    serve_ready_s: dict[str, list[float]] = field(default_factory=dict)
    swapper_load_s: dict[str, list[float]] = field(default_factory=dict)
    swapper_first_call_s: dict[str, list[float]] = field(default_factory=dict)


def prepare_cold_repository(cache_dir: Path, profile: Profile) -> Path:
    """The profile's detector, recognizer and swapper, installed (reused when cached)."""
    from gateway.ops.repository.install import install_models, read_manifest
    from gateway.ops.repository.synthetic import NOT_A_FACE_MODEL, build_synthetic_models

    repository = cache_dir / profile / "cold" / "repository"
    source = f"synthetic-{profile}"
    manifest = read_manifest(repository)
    if all(manifest.get(name, {}).get("source") == source for name in MODELS):
        log.info("reusing %s synthetic models in %s", profile, repository)
        return repository
    log.info("building %s synthetic models (with the swapper) into %s", profile, repository)
    built = build_synthetic_models(profile)
    upstream = {
        spec.DETECTOR: built.detector,
        spec.RECOGNIZER: built.recognizer,
        spec.SWAPPER: built.swapper,
    }
    label = {"source": source, "synthetic": NOT_A_FACE_MODEL}
    install_models(repository, upstream, dict.fromkeys(upstream, label))
    return repository


def use_variant(repository: Path, variant: str) -> None:
    """Rewrite every model's configs/embedded.pbtxt with the variant's runner settings."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    from gateway.ops.repository import configs
    from gateway.ops.repository.sessions import embedded_session

    for name in MODELS:
        path = repository / name / configs.config_path("embedded")
        config = text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())
        sha = config.parameters[spec.MODEL_SHA256_PARAMETER].string_value
        layout = configs.layouts(**{f"{name}_max_batch": config.max_batch_size})[name]
        session = BEFORE if variant == "before" else embedded_session(name)
        path.write_text(configs.render_config(layout, "embedded", sha, session))


def _wait(check: Callable[[], bool], what: str, alive: Callable[[], bool] = lambda: True) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not check():
        if not alive():
            raise BenchError(f"{what}: the process exited first")
        if time.monotonic() > deadline:
            raise BenchError(f"{what}: not within {READY_TIMEOUT_S:.0f} s")
        time.sleep(POLL_S)


def _answers_200(url: str) -> bool:
    with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as answer:
        return bool(answer.status == 200)
    return False


def time_serve_ready(repository: Path) -> float:
    """Seconds from starting `facegate serve` on `repository` until /health/ready is 200."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gateway.ops.cli",
        "serve",
        f"--repository={repository}",
        "--models=synthetic",  # reuses the repository's synthetic models
        "--no-gallery",
        "--no-auth",
        f"--port={port}",
        *(
            f"--{name}-port={number}"
            for name, number in zip(("grpc", "http", "metrics"), free_ports(3), strict=True)
        ),
    ]
    env = {**os.environ, "FACEGATE_LOG_LEVEL": "WARNING"}
    with tempfile.TemporaryFile() as output:
        started = time.monotonic()
        child = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            _wait(
                lambda: _answers_200(f"http://127.0.0.1:{port}/health/ready"),
                "facegate serve ready",
                lambda: child.poll() is None,
            )
            return time.monotonic() - started
        except BenchError as exc:
            output.seek(0)
            tail = output.read().decode(errors="replace")[-2000:]
            raise BenchError(f"{exc}\n{tail}") from exc
        finally:
            stop_child(child)


@contextlib.contextmanager
def _triton(repository: Path) -> Iterator[tuple[str, str]]:
    """An embedded Triton on `repository`: yields (HTTP URL, repository key)."""
    from gateway.ops.servers.triton import EmbeddedTriton, TritonOptions, TritonPorts

    ports = TritonPorts(*free_ports(3))
    triton = EmbeddedTriton(TritonOptions(repository=repository, ports=ports))
    try:
        triton.start()
        yield triton.http_url, triton.options.repository_key
    finally:
        triton.stop()


def time_swapper_load(http_url: str, repository_key: str) -> tuple[float, float]:
    """(load-until-ready s, first-call s) of the swapper on a running Triton; unloads it after."""
    import tritonclient.http as httpclient

    headers = {spec.REPOSITORY_KEY_HEADER: repository_key}
    client = httpclient.InferenceServerClient(http_url.removeprefix("http://"), network_timeout=600)
    try:
        started = time.monotonic()
        client.load_model(spec.SWAPPER, headers=headers)
        _wait(lambda: client.is_model_ready(spec.SWAPPER), "swapper ready")
        loaded = time.monotonic()
        target = httpclient.InferInput(spec.SWAPPER_TARGET.name, [1, 128, 128, 3], "UINT8")
        target.set_data_from_numpy(np.full((1, 128, 128, 3), 128, np.uint8))
        source = httpclient.InferInput(spec.SWAPPER_SOURCE.name, [1, 512], "FP32")
        source.set_data_from_numpy(np.full((1, 512), 512**-0.5, np.float32))
        client.infer(spec.SWAPPER, [target, source])
        answered = time.monotonic()
        client.unload_model(spec.SWAPPER, headers=headers)
        _wait(lambda: not client.is_model_ready(spec.SWAPPER), "swapper unloaded")
        return loaded - started, answered - loaded
    finally:
        client.close()


def _order(round_index: int) -> tuple[str, ...]:
    return VARIANTS if round_index % 2 == 0 else tuple(reversed(VARIANTS))


def measure_cold(repository: Path, rounds: int, tick: Callable[[str], None]) -> ColdResults:
    """Alternate the variants `rounds` times for each measurement; configs end as installed."""
    results = ColdResults()
    try:
        for index in range(rounds):
            for variant in _order(index):
                tick(f"serve to ready ({variant}, round {index + 1}/{rounds})")
                use_variant(repository, variant)
                seconds = time_serve_ready(repository)
                results.serve_ready_s.setdefault(variant, []).append(seconds)
        with _triton(repository) as (http_url, key):
            for index in range(rounds):
                for variant in _order(index):
                    tick(f"swapper cold load ({variant}, round {index + 1}/{rounds})")
                    use_variant(repository, variant)
                    load_s, first_s = time_swapper_load(http_url, key)
                    results.swapper_load_s.setdefault(variant, []).append(load_s)
                    results.swapper_first_call_s.setdefault(variant, []).append(first_s)
    finally:
        use_variant(repository, "installed")
    return results


def format_cold(results: ColdResults, load_before: str, load_after: str) -> str:
    """Median seconds per variant and the ratio installed/before, with every round's figure."""
    rows: Mapping[str, dict[str, list[float]]] = {
        "facegate serve to ready": results.serve_ready_s,
        "swapper cold load (load call to ready)": results.swapper_load_s,
        "swapper first call after the load": results.swapper_first_call_s,
    }
    lines = [
        "| measurement | before (s, median) | installed (s, median) | installed / before | rounds (before; installed) |",
        "|---|---|---|---|---|",
    ]
    for label, values in rows.items():
        before, after = values.get("before", []), values.get("installed", [])
        if not before or not after:
            continue
        b, a = float(np.median(before)), float(np.median(after))
        rounds = f"{', '.join(f'{v:.2f}' for v in before)}; {', '.join(f'{v:.2f}' for v in after)}"
        lines.append(f"| {label} | {b:.2f} | {a:.2f} | {a / b:.2f}x | {rounds} |")
    lines.append("")
    lines.append(f"Load average (1/5/15 min) at the start {load_before}, at the end {load_after}.")
    return "\n".join(lines) + "\n"


def run_cold(cache_dir: Path, profile: Profile, rounds: int, out: TextIO) -> ColdResults:
    """Build or reuse the models, measure both variants, write the table to `out`."""
    from gateway.ops.machine import load_average

    repository = prepare_cold_repository(cache_dir, profile)
    load_before = load_average()

    def tick(step: str) -> None:
        # Progress on stderr: each step takes seconds to a minute.
        sys.stderr.write(f"cold start: {step}\n")
        sys.stderr.flush()

    results = measure_cold(repository, rounds, tick)
    out.write(format_cold(results, load_before, load_average()))
    return results


def run_cold_command(options: BenchOptions, report: Path | None) -> int:
    """`facegate bench --cold [--write-report PATH]`: measure, print, optionally record.

    Raises BenchError (with what to do) when a server does not start or a model does not load.
    """
    from gateway.ops.machine import describe_machine
    from gateway.ops.servers.stack import StackError
    from gateway.ops.servers.triton import EmbeddedTritonError

    # Before the run: its "load average at start" was read at the end before.
    machine = describe_machine()
    text = io.StringIO()
    try:
        run_cold(options.cache_dir, options.profile, options.rounds, text)
    except (BenchError, StackError, EmbeddedTritonError) as exc:
        raise BenchError(
            f"{exc}\nRerun with --fresh-models if the cached models are damaged."
        ) from exc
    sys.stdout.write(text.getvalue())
    if report is not None:
        command = f"facegate bench --cold --profile {options.profile} --rounds {options.rounds}"
        write_cold_report(report, text.getvalue(), command, machine)
        sys.stdout.write(f"Wrote the cold-start figures to {report}\n")
    return 0


def write_cold_report(path: Path, table: str, command: str, machine: dict[str, str]) -> None:
    """Replace the cold-start block of the report (between its markers) with `table`.

    `machine`: describe_machine() read before the run (its load average is the start's).
    """
    from gateway.ops.machine import git_commit
    from gateway.ops.reports import replace_block

    described = ", ".join(f"{k}: {v}" for k, v in machine.items())
    block = (
        f"{BEGIN}\n\nCommand: `{command}`, commit {git_commit()}.\n\n"
        f"Machine: {described}.\n\n{table}\n{END}"
    )
    replace_block(path, block, HEADING)
