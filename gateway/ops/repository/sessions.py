"""The embedded runner's onnxruntime settings per model, chosen from the host at install.

On the embedded install every model's Python-backend stub runs on the same cores as the
others and as the gateway. Spin-wait off everywhere, and every model gets all the cores:
with spin-wait off an idle pool costs nothing, so the pools can share the cores, while
half the cores each (which won an A/B on a machine already busy with other work) leaves a
core idle whenever only one model runs (docs/BENCHMARKS.md, "Embedded Triton settings").
One Triton instance per model; short dynamic-batching waits. The execution provider (CPU
or OpenVINO) is chosen per model by the install's A/B (providers.py).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from gateway.ops.repository.configs import EmbeddedSession
from gateway.triton import spec

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
# Dynamic batching waits on the CPU server: shorter than the NGC configs' 2000/1000 us won
# both p50 at concurrency 1 and throughput at 4 (docs/BENCHMARKS.md); the batched models
# beside the recognizer follow it.
EMBEDDED_QUEUE_DELAY_US = {
    spec.DETECTOR: 500,
    spec.RECOGNIZER: 250,
    spec.GENDERAGE: 250,
    spec.LIVENESS: 250,
    spec.LANDMARK_2D106: 250,
    spec.LANDMARK_3D68: 250,
}


def host_cores() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup v2 CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    with contextlib.suppress(OSError, ValueError):
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            # A quota of 1.5 CPUs still lets 2 threads run part of the time: round up.
            cores = min(cores, max(1, -(-int(quota) // int(period))))
    return cores


def embedded_session(name: str, cores: int | None = None) -> EmbeddedSession:
    """The session settings written into `name`'s configs/embedded.pbtxt for a host of `cores`."""
    cores = host_cores() if cores is None else cores
    delay = EMBEDDED_QUEUE_DELAY_US.get(name)
    return EmbeddedSession(
        intra_op_threads=cores,
        inter_op_threads=1,
        # Only the swapper loads on demand, in a user's request; the saved recognizer ran
        # 4-14% slower warm than one optimised at load in three runs (the detector equal),
        # while the detect-path models load once, at start.
        use_optimized_model=name == spec.SWAPPER,
        queue_delay_us=delay,
    )
