#!/usr/bin/env python3
"""Thin wrapper: `scripts/bench.py ARGS` is `facegate bench ARGS` (see --help)."""

from __future__ import annotations

import sys

from gateway.ops.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
