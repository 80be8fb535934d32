#!/usr/bin/env python
"""A/B of the embedded runner's settings in one run (docs/BENCHMARKS.md, issue 12).

One embedded Triton and gateway per variant, side by side, on copies of the realistic bench
repository that differ only in configs/embedded.pbtxt (model files are hard links); then
InsightFace in process, REST and gRPC of every variant are timed together by the bench's
own measure(), in interleaved rounds. Prints p50 per image and images/s at concurrency 4,
with ratios to InsightFace in process. Usage: scripts/ab_embedded.py threads|tuning [--rounds N]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import shutil
import sys
from pathlib import Path

from gateway.ops.bench.images import bench_images
from gateway.ops.bench.measure import measure
from gateway.ops.bench.models import prepare_models
from gateway.ops.bench.options import DEFAULT_CACHE_DIR, BenchOptions
from gateway.ops.bench.scenarios import GrpcDetect, InsightFaceInProcess, RestDetect, Scenario
from gateway.ops.repository import configs
from gateway.ops.repository.configs import EmbeddedSession
from gateway.ops.servers.stack import running_gateway
from gateway.triton import spec

MODELS = (spec.DETECTOR, spec.RECOGNIZER)
# name -> (session of both models, queue delays in us or None for the generated ones)
Variant = tuple[EmbeddedSession, dict[str, int] | None]
S = EmbeddedSession
SETS: dict[str, dict[str, Variant]] = {
    "threads": {
        "before (0, spin)": (S(0, 0, allow_spinning=True, use_optimized_model=False), None),
        "0, no spin": (S(0, 0, use_optimized_model=False), None),
        "1+1": (S(1, 1, use_optimized_model=False), None),
        "2+2": (S(2, 1, use_optimized_model=False), None),
    },
    "final": {
        "before issue 12": (S(0, 0, allow_spinning=True, use_optimized_model=False), None),
        "installed (1+1 d500/250)": (S(1, 1), {spec.DETECTOR: 500, spec.RECOGNIZER: 250}),
        "2+2 d500/250": (S(2, 1), {spec.DETECTOR: 500, spec.RECOGNIZER: 250}),
    },
    "tuning": {
        "1+1 d2000/1000": (S(1, 1), None),
        "1+1 x2 instances": (S(1, 1, instances=2), None),
        "1+1 d0/0": (S(1, 1), {spec.DETECTOR: 0, spec.RECOGNIZER: 0}),
        "1+1 d500/250": (S(1, 1), {spec.DETECTOR: 500, spec.RECOGNIZER: 250}),
    },
}


def variant_repository(source: Path, target: Path, variant: Variant) -> Path:
    """A copy of `source` (hard links) whose embedded configs carry `variant`."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    session, delays = variant
    shutil.rmtree(target, ignore_errors=True)
    for name in MODELS:
        (target / name / "1").mkdir(parents=True)
        for path in (source / name / "1").iterdir():
            if path.is_file():
                os.link(path, target / name / "1" / path.name)
        config_path = configs.config_path("embedded")
        config = text_format.Parse(
            (source / name / config_path).read_text(), model_config_pb2.ModelConfig()
        )
        layout = configs.layouts(**{f"{name}_max_batch": config.max_batch_size})[name]
        if delays:
            layout = dataclasses.replace(layout, queue_delay_us=delays[name])
        sha = config.parameters[spec.MODEL_SHA256_PARAMETER].string_value
        (target / name / config_path).parent.mkdir()
        (target / name / config_path).write_text(
            configs.render_config(layout, "embedded", sha, session)
        )
    shutil.copy(source / "MODELS.json", target / "MODELS.json")
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("set", choices=sorted(SETS), help="which variants to compare")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    parser.add_argument("--per-round", type=int, default=6, help="c=1 requests per round")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/facegate-ab"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    models = prepare_models(DEFAULT_CACHE_DIR, "realistic")
    images = bench_images()
    options = BenchOptions(
        latency_requests=args.per_round * args.rounds,
        throughput_requests=8,
        concurrency=(1, 4),
        warmup=2,
        rounds=args.rounds,
    )
    out = sys.stdout
    out.write(f"load average at the start: {os.getloadavg()}\n")
    with contextlib.ExitStack() as stack:
        baseline = InsightFaceInProcess(models, 0, 0, ["CPUExecutionProvider"])
        scenarios = [Scenario("insightface", "", baseline)]
        for label, variant in SETS[args.set].items():
            slug = "".join(c if c.isalnum() else "_" for c in label)
            repository = variant_repository(models.repository, args.work_dir / slug, variant)
            gateway = stack.enter_context(running_gateway(repository, models.label))
            rest = RestDetect(gateway.url, gateway.api_key)
            stack.callback(rest.close)
            wire = GrpcDetect(gateway.triton_grpc_url, shared_memory=False, shm_regions=4)
            stack.callback(wire.close)
            scenarios += [Scenario(f"rest {label}", "", rest), Scenario(f"grpc {label}", "", wire)]
        results = measure(tuple(scenarios), images, options)
    out.write(f"load average at the end: {os.getloadavg()}\n")
    for image in images:
        base = results[("insightface", image.name)].percentile_ms(50)
        out.write(f"\n{image.name}: p50 ms (ratio to insightface), per-round p50\n")
        for scenario in scenarios:
            found = results[(scenario.name, image.name)]
            p50 = found.percentile_ms(50)
            rounds = [round(x) for x in found.round_percentiles_ms(50)]
            out.write(f"  {scenario.name:28s} {p50:8.1f} ({p50 / base:.2f}x) {rounds}\n")
    sweep = images[0].name
    base = results[("insightface", sweep)].images_per_s(4)
    out.write(f"\nconcurrency 4 on {sweep}: img/s (ratio), per round\n")
    for scenario in scenarios:
        found = results[(scenario.name, sweep)]
        rate = found.images_per_s(4)
        rounds = [round(x, 2) for x in found.round_images_per_s(4)]
        out.write(f"  {scenario.name:28s} {rate:6.2f} ({rate / base:.2f}x) {rounds}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
