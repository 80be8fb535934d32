"""Nearest-neighbour search of one collection's partition, one round trip per chunk."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from pgvector import HalfVector
from psycopg import sql

from gateway.gallery_ports import DEFAULT_EF_SEARCH, Match
from gateway.storage.base import Connection, StoreBase, bounded, no_collection
from gateway.storage.faces import halfvec

MAX_EF_SEARCH = 1000
# Query vectors per bounded search call (a chunk takes ~1 s at 1M faces, ef_search 100).
SEARCH_CHUNK = 100
# Faces of a subject being erased (storage/erasure.py) are left out in the query, so the index
# scan goes on past them (hnsw.iterative_scan, strict order) and still finds `candidates`
# faces; the ARRAY is evaluated once per query, from a partial index (migration 3).
# Leaves out the faces of subjects being erased (a partial index, migration 3), evaluated once
# per query; its %s is the collection's id. Search and every read of faces use it.
NOT_ERASING = (
    "(subject IS NULL OR subject <> ALL (ARRAY("
    "SELECT name FROM gallery_subjects WHERE collection_id = %s AND erasing)))"
)
_SEARCH = (
    "SELECT subject, 1 - (embedding <=> %s) AS similarity, id FROM gallery_faces"
    " WHERE collection_id = %s AND " + NOT_ERASING + " ORDER BY embedding <=> %s LIMIT %s"
)
# The same without the index: no index matches "+ 0", so every face's distance is computed
# and the top `candidates` sorted (SET enable_indexscan = off still planned the HNSW scan,
# marked disabled, on PostgreSQL 18).
_EXACT_SEARCH = _SEARCH.replace("ORDER BY embedding <=> %s", "ORDER BY (embedding <=> %s) + 0")


async def set_hnsw_scan(conn: Connection, ef: int, iterative: bool) -> None:
    """SET LOCAL the HNSW scan of the caller's transaction: its breadth, and the strict-order
    iterative scan where pgvector has it (StoreBase._hnsw_iterative), which goes on past rows
    a WHERE clause drops (NOT_ERASING)."""
    await conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(ef)))
    if iterative:
        await conn.execute("SET LOCAL hnsw.iterative_scan = strict_order")


async def search_pipelined(
    conn: Connection,
    collection: str,
    cid: int,
    vectors: Sequence[HalfVector],
    ef: int,
    candidates: int,
    exact: bool = False,
    iterative: bool = True,
) -> tuple[list[list[Match]], int | None]:
    """One round trip: set ef_search, check the collection's id, search every vector.

    Returns the matches per vector and the collection's id now (None once deleted): the
    matches count only if that is the cid they were searched with. ef_search is SET LOCAL in
    the search's own transaction, so it never stays on the pooled connection. Faces of a
    subject being erased (storage/erasure.py) are left out, and others take their places.
    exact: no index, a scan of the whole partition (what `facegate gallery bench` compares
    the index with). iterative: pgvector has iterative scans (0.8+); without them the index
    still leaves the hidden faces out, but may then return fewer than `candidates`.
    """
    async with conn.pipeline(), conn.transaction():
        if not exact:
            await set_hnsw_scan(conn, ef, iterative)
        check = await conn.execute(
            "SELECT id FROM gallery_collections WHERE name = %s", (collection,)
        )
        query = _EXACT_SEARCH if exact else _SEARCH
        cursors = [await conn.execute(query, (v, cid, cid, v, candidates)) for v in vectors]
    row = await check.fetchone()
    found = [
        [Match(s, float(sim), str(fid)) for s, sim, fid in await cursor.fetchall()]
        for cursor in cursors
    ]
    return found, int(row[0]) if row is not None else None


class SearchMixin(StoreBase):
    """identify's search: the `candidates` nearest faces of a collection per query."""

    async def search(
        self,
        collection: str,
        queries: npt.NDArray[np.float32],
        candidates: int,
        ef_search: int = DEFAULT_EF_SEARCH,
        exact: bool = False,
    ) -> list[list[Match]]:
        """Top `candidates` faces per row of `queries` (n, 512), in chunks of SEARCH_CHUNK rows.

        Each chunk is one bounded call: a request may carry up to 1,000 embeddings, and one
        bound over all of them would turn a large batch on a large gallery into a 503.
        """
        found: list[list[Match]] = []
        for start in range(0, len(queries), SEARCH_CHUNK):
            found += await self._search_chunk(
                collection, queries[start : start + SEARCH_CHUNK], candidates, ef_search, exact
            )
        return found

    @bounded
    async def _search_chunk(
        self,
        collection: str,
        queries: npt.NDArray[np.float32],
        candidates: int,
        ef_search: int,
        exact: bool = False,
    ) -> list[list[Match]]:
        # HNSW returns at most ef_search rows, so it is never below the rows asked for.
        ef = min(max(candidates, ef_search), MAX_EF_SEARCH)
        vectors = [halfvec(row) for row in queries]
        async with self._connection() as conn:
            cid = self._collection_ids.get(collection)
            if cid is None:
                cid = await self._collection_id(conn, collection)
            iterative = await self._hnsw_iterative(conn)
            found, current = await search_pipelined(
                conn, collection, cid, vectors, ef, candidates, exact, iterative
            )
            if current != cid:  # deleted, or deleted and created again, since it was cached
                self._collection_ids.pop(collection, None)
                if current is None:
                    raise no_collection(collection)
                found, current = await search_pipelined(
                    conn, collection, current, vectors, ef, candidates, exact, iterative
                )
            if current is not None:
                self._collection_ids[collection] = current
        return found
