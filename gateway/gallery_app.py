"""Wiring of the gallery into the app: migrations, the store, the recognizer identity, metrics.

The gateway starts even when the gallery database is down (detection does not need it):
gallery routes answer 503 and a background task keeps trying to connect.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol, cast

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Gauge, Histogram

from gateway.audit import AuditQueue, prune_audit
from gateway.background import keep_running
from gateway.config import Settings
from gateway.errors import FacegateError, GalleryUnavailable
from gateway.metrics import LATENCY_BUCKETS_S
from gateway.service.clustering import Clustering
from gateway.service.gallery import Gallery
from gateway.service.pipeline import Pipeline
from gateway.storage.postgres import PostgresGalleryStore, open_store
from gateway.supervision import POSTGRES, ServerStates

log = logging.getLogger(__name__)
CONNECT_RETRY_S = 5.0
RECOGNIZER_CACHE_S = 30.0
SIZES_REFRESH_S = 60.0
EPOCH_POLL_S = 0.25


@dataclass
class GalleryMetrics:
    """Faces per collection and search latency."""

    registry: CollectorRegistry

    def __post_init__(self) -> None:
        self.faces = Gauge(
            "facegate_gallery_faces",
            "enrolled faces per collection (refreshed every minute)",
            ["collection"],
            registry=self.registry,
        )
        self.search_seconds = Histogram(
            "facegate_gallery_search_seconds",
            "nearest-neighbour search latency in the database (per identify call)",
            buckets=(0.001, 0.0025, *LATENCY_BUCKETS_S),
            registry=self.registry,
        )

    def observe_search(self, collection: str, seconds: float) -> None:
        self.search_seconds.observe(seconds)


class RecognizerSource(Protocol):
    """A backend that can tell a model's prepared sha256 (TritonFaceModels can)."""

    async def model_sha256(self, model: str) -> str | None: ...


@dataclass
class RecognizerIdentity:
    """The loaded recognizer's prepared-model sha256: the setting, else Triton's config."""

    models: object
    settings: Settings
    _cached: tuple[float, str] | None = field(default=None, init=False)

    async def __call__(self) -> str:
        if self.settings.recognizer_sha256:
            return self.settings.recognizer_sha256
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < RECOGNIZER_CACHE_S:
            return self._cached[1]
        source = self.models if hasattr(self.models, "model_sha256") else None
        sha = (
            await cast(RecognizerSource, source).model_sha256(self.settings.recognizer_model)
            if source
            else None
        )
        if not sha:
            raise GalleryUnavailable(
                "the recognizer's sha256 is unknown (its Triton config has no "
                "facegate_model_sha256): reinstall the models with `facegate models fetch|import|"
                "synthetic`, or set FACEGATE_RECOGNIZER_SHA256"
            )
        self._cached = (now, sha)
        return sha


async def _refresh_sizes(gallery: Gallery, metrics: GalleryMetrics) -> None:
    while True:
        try:
            for collection in await gallery.list_collections():
                metrics.faces.labels(collection.name).set(collection.faces)
        except FacegateError as exc:
            log.warning("gallery sizes not refreshed: %s", exc.message)
        await asyncio.sleep(SIZES_REFRESH_S)


async def _follow_restarts(store: PostgresGalleryStore, servers: ServerStates) -> None:
    """After `facegate serve` restarted its PostgreSQL: connect afresh at once."""
    seen = servers.epoch(POSTGRES)
    while True:
        await asyncio.sleep(EPOCH_POLL_S)
        epoch = servers.epoch(POSTGRES)
        if epoch != seen:
            seen = epoch
            log.warning("the gallery database was restarted: reconnecting")
            await store.reconnect()


async def run_gallery(app: FastAPI, settings: Settings, pipeline: Pipeline, models: object) -> None:
    """Connect (retrying), publish app.state.gallery, then keep the size gauge fresh.

    Runs as a background task for the app's lifetime; cancel it to stop, then close the store
    at app.state.gallery_store.
    """
    metrics = GalleryMetrics(app.state.metrics.registry)
    while True:
        try:
            store = await open_store(
                settings.gallery_url.get_secret_value(),
                pool_size=settings.gallery_pool_size,
                timeout_s=settings.gallery_timeout_s,
                migrate=settings.gallery_migrate,
                statement_timeout_s=settings.gallery_statement_timeout_s,
                run_jobs=True,
            )
            break
        except FacegateError as exc:
            app.state.gallery_reason = f"{exc.message} (the gateway keeps retrying)"
            log.warning("gallery not ready: %s", exc.message)
            await asyncio.sleep(CONNECT_RETRY_S)
    app.state.gallery_store = store
    gallery = Gallery(
        store,
        pipeline,
        RecognizerIdentity(models, settings),
        ef_search=settings.gallery_ef_search,
        on_search=metrics.observe_search,
    )
    app.state.clustering = Clustering(store, ef_search=settings.gallery_ef_search)
    app.state.gallery = gallery
    log.info("gallery ready")
    # Each loop restarts on its own: the store stays open, the connect above is not redone.
    loops = [
        keep_running("gallery-sizes", lambda: _refresh_sizes(gallery, metrics)),
        keep_running("gallery-restarts", lambda: _follow_restarts(store, app.state.servers)),
    ]
    if settings.audit_table:
        queue = AuditQueue()
        app.state.audit_queue = queue
        loops += [
            keep_running("audit-table", lambda: queue.write(store)),
            keep_running("audit-prune", lambda: prune_audit(store, settings.audit_retention_days)),
        ]
    await asyncio.gather(*loops)
