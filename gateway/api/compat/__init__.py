"""Drop-in routes for clients written for other servers, off unless FACEGATE_COMPAT names them.

- `ifr`: InsightFace-REST 0.9.5's POST /extract, GET /info, GET /health (ifr.py)
- `immich`: Immich machine learning's POST /predict (faces only) and GET /ping (immich.py)

Their clients cannot send an API key, so these routes are unauthenticated: each answers
only callers from FACEGATE_COMPAT_NETWORKS (loopback by default) and counts against the
same in-flight limit and deadline as /v1/. They are adapters over the same service.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI

from gateway.api.compat import ifr, immich
from gateway.api.compat.access import parse_networks
from gateway.config import Settings

log = logging.getLogger(__name__)


def install_compat(app: FastAPI, settings: Settings) -> None:
    """Add the enabled compatibility routers and put their paths under admission control."""
    enabled = [name for name in settings.compat.split(",") if name]
    if not enabled:
        return
    app.state.compat_networks = parse_networks(settings.compat_networks)
    guarded: set[str] = set()
    if "ifr" in enabled:
        app.include_router(ifr.router)
        guarded |= {"/extract", "/health"}  # the routes that run inference
    if "immich" in enabled:
        prefixes = {"", immich.normalise_prefix(settings.compat_immich_prefix)}
        for prefix in sorted(prefixes):
            app.include_router(immich.router, prefix=prefix)
            guarded.add(f"{prefix}/predict")
    app.state.admission.extra_paths = frozenset(guarded)
    log.warning(
        "compatibility routes enabled (%s): NO API key, open to %s; paths %s",
        ",".join(enabled),
        settings.compat_networks,
        ", ".join(sorted(guarded)),
    )
