"""`facegate loadtest --faults ...`: the run, its text report and its verdict."""

from __future__ import annotations

import sys

from gateway.ops.bench.images import bench_images
from gateway.ops.bench.options import BenchError
from gateway.ops.loadtest.options import LoadOptions


def run_with_faults(options: LoadOptions, schedule: str) -> int:
    """Exit status 0 when every fault recovered, nothing failed outside them, and no process
    grew past the memory goal."""
    from gateway.ops.failures import CommandFailed
    from gateway.ops.loadtest.driver import load_models
    from gateway.ops.loadtest.faults import format_faults, parse_faults, run_fault_loadtest
    from gateway.ops.loadtest.gallery_load import gallery_kinds, new_collection_name
    from gateway.ops.loadtest.kinds import request_kinds
    from gateway.ops.loadtest.report import format_text

    try:
        faults = parse_faults(schedule)
        late = [f for f in faults if f.at_s >= options.duration_s]
        if late:
            raise BenchError(f"fault {late[0].kind}@{late[0].at_s:g} is after the run's end")
        sys.stdout.write(f"preparing {options.profile} synthetic models ...\n")
        models = load_models(options)
        small, large = bench_images()
        collection = new_collection_name()
        kinds = {**request_kinds(small, large), **gallery_kinds(collection, small)}
        run = run_fault_loadtest(options, faults, models, kinds, sys.stdout, collection)
    except BenchError as exc:
        raise CommandFailed(str(exc)) from exc
    sys.stdout.write(format_text(run.summary, options))
    sys.stdout.write(format_faults(run.injected, run.outside, run.memory))
    if run.passed:
        sys.stdout.write(
            "PASS with faults: every fault recovered and nothing failed outside the fault "
            "windows (the verdict above also counts the failures inside them)\n"
        )
    else:
        sys.stdout.write(
            "FAIL with faults: a fault did not recover or something failed outside the fault "
            "windows (see above)\n"
        )
    if not run.memory_ok:
        sys.stdout.write("FAIL on memory: a process grew past the goal after its baseline\n")
    return 0 if run.passed and run.memory_ok else 1
