"""GalleryStore on PostgreSQL + pgvector (psycopg 3, async pool): the store and open_store.

One module per concern, combined here:

    base.py         the pool, the per-call bound, psycopg errors -> the gateway's (one seam)
    migrations.py   the versioned schema
    partitions.py   one partition of gallery_faces (and its HNSW index) per collection
    collections.py  create, list, read, delete collections
    faces.py        subjects and faces: enrol, read, erase
    search.py       identify's nearest-neighbour search
    export.py       faces with their embeddings, for `facegate gallery export`
    clustering.py   unassigned faces, assigning by hand, and cluster runs' queries and writes
    erasure.py      DELETE of collections and subjects of any size: jobs, resumed
"""

from __future__ import annotations

import asyncio
import logging

import psycopg

from gateway.storage.audit import AuditMixin
from gateway.storage.base import translate_error
from gateway.storage.clustering import ClusteringMixin
from gateway.storage.collections import CollectionsMixin
from gateway.storage.erasure import ErasureMixin
from gateway.storage.export import ExportMixin
from gateway.storage.faces import FacesMixin
from gateway.storage.migrations import apply_migrations
from gateway.storage.search import SearchMixin

log = logging.getLogger(__name__)


class PostgresGalleryStore(
    CollectionsMixin,
    FacesMixin,
    SearchMixin,
    ExportMixin,
    ClusteringMixin,
    AuditMixin,
    ErasureMixin,
):
    """The gallery in one PostgreSQL database; open() after migrations have run."""


async def open_store(
    conninfo: str,
    *,
    pool_size: int,
    timeout_s: float,
    migrate: bool,
    statement_timeout_s: float | None = None,
    run_jobs: bool = False,
) -> PostgresGalleryStore:
    """Apply pending migrations (when asked) and open a pooled store; errors translated.

    run_jobs: the store also runs erasure jobs nobody runs (storage/erasure.py): the
    gateway's store only, never a CLI's or a bench's (one could claim a job and leave it
    cancelled at its close, or fill its one connection with a detach).
    """
    if migrate:
        try:
            applied = await asyncio.to_thread(apply_migrations, conninfo)
        except psycopg.Error as exc:
            raise translate_error(exc) from exc
        if applied:
            log.info("gallery schema migrated to version %d", applied[-1])
    store = PostgresGalleryStore(
        conninfo,
        pool_size=pool_size,
        timeout_s=timeout_s,
        statement_timeout_s=statement_timeout_s,
        run_jobs=run_jobs,
    )
    await store.open()
    return store
