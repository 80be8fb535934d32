"""`facegate loadtest`: a bounded load test of the embedded stack (issue 7).

Starts the embedded Triton and `facegate gateway` as `facegate bench` does, drives a weighted
mix of REST requests at a fixed concurrency for a fixed time, samples the resident memory of
both processes, and judges the run: no failed request, memory growth within a bound.

  options.py   what to run (duration, concurrency, mix, bound) and the mix parser
  kinds.py     the request kinds: how each is sent and what a correct answer looks like
  driver.py    the asyncio driver: workers, the once-a-second sampler (gateway/ops/procfs.py),
               the progress bar
  stats.py     percentiles, failures and memory growth from the raw records (pure)
  report.py    the terminal text and the generated block of docs/BENCHMARKS.md
  command.py   the `facegate loadtest` subcommand
"""

from __future__ import annotations

from gateway.ops.loadtest.driver import run_loadtest
from gateway.ops.loadtest.options import DEFAULT_MIX, LoadOptions, parse_mix
from gateway.ops.loadtest.report import format_text, write_report
from gateway.ops.loadtest.stats import LoadSummary, summarize

__all__ = [
    "DEFAULT_MIX",
    "LoadOptions",
    "LoadSummary",
    "format_text",
    "parse_mix",
    "run_loadtest",
    "summarize",
    "write_report",
]
