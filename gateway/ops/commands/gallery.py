"""`facegate gallery migrate|status|export|import|bench`, and the embedded gallery of `serve`.

Every subcommand works on FACEGATE_GALLERY_URL (or --url) when set, else on the embedded
PostgreSQL in --data-dir, which it starts for the command and stops after.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# Only light imports at module level: the parser of every `facegate` command imports this.
from gateway.ops.commands._common import positive_int
from gateway.ops.commands.gallery_audit import add_audit_parser, cmd_audit, read_table
from gateway.ops.servers.postgres import (
    EmbeddedPostgres,
    EmbeddedPostgresError,
    PostgresOptions,
    default_data_dir,
)

log = logging.getLogger(__name__)
# A halfvec(512) face costs ~1.1 KiB of table and ~1.3 KiB of HNSW index (docs/BENCHMARKS.md):
# 512 MB keeps ~200k faces in memory; PostgreSQL's own default (128 MB) only ~50k.
DEFAULT_SHARED_BUFFERS = "512MB"


class GalleryCommandError(Exception):
    """A gallery command failed; the message says what to do."""


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    """--gallery-dir / --no-gallery for `facegate serve`."""
    parser.add_argument(
        "--gallery-dir",
        type=Path,
        default=None,
        help=f"data folder of the embedded PostgreSQL (default {default_data_dir()}); "
        "ignored when FACEGATE_GALLERY_URL is set",
    )
    parser.add_argument(
        "--no-gallery", action="store_true", help="no face gallery (gallery routes answer 503)"
    )
    parser.add_argument(
        "--gallery-shared-buffers",
        default=DEFAULT_SHARED_BUFFERS,
        help="shared_buffers of the embedded PostgreSQL (default %(default)s: the index and "
        "faces of ~200k faces; give ~2.5 KiB per face so searches never wait on the disk)",
    )


def server_settings(shared_buffers: str) -> tuple[str, ...]:
    """`-c` settings of the embedded PostgreSQL; empty shared_buffers keeps PostgreSQL's own.

    pg_prewarm's autoprewarm worker (shipped with the wheel) records which blocks are in
    shared buffers and loads them again after a restart, so the first searches after one
    do not each wait on the disk for the HNSW graph.
    """
    sizing = (f"shared_buffers={shared_buffers}",) if shared_buffers else ()
    return (*sizing, "shared_preload_libraries=pg_prewarm")


def serve_gallery_server(args: argparse.Namespace) -> EmbeddedPostgres | None:
    """For `serve`: the embedded PostgreSQL to start (None: no gallery, or an external one)."""
    if args.no_gallery or os.environ.get("FACEGATE_GALLERY_URL"):
        return None
    return EmbeddedPostgres(
        PostgresOptions(
            data_dir=args.gallery_dir or default_data_dir(),
            settings=server_settings(args.gallery_shared_buffers),
        )
    )


@contextmanager
def gallery_url(args: argparse.Namespace) -> Iterator[str]:
    """--url, else FACEGATE_GALLERY_URL, else the embedded PostgreSQL (started for the command)."""
    url = args.url or os.environ.get("FACEGATE_GALLERY_URL", "")
    if url:
        yield url
        return
    server = EmbeddedPostgres(
        PostgresOptions(
            data_dir=args.data_dir or default_data_dir(),
            settings=server_settings(args.shared_buffers),
        )
    )
    try:
        server.start()
    except EmbeddedPostgresError as exc:
        raise GalleryCommandError(str(exc)) from exc
    try:
        yield server.url()
    finally:
        server.stop()


def cmd_migrate(args: argparse.Namespace) -> int:
    from gateway.storage.migrations import MIGRATIONS, apply_migrations

    with gallery_url(args) as url:
        applied = apply_migrations(url)
    latest = MIGRATIONS[-1].version
    print(f"gallery schema at version {latest}" + (f" (applied {applied})" if applied else ""))
    return 0


async def _status(url: str) -> list[dict[str, Any]]:
    from gateway.storage.postgres import open_store

    store = await open_store(url, pool_size=1, timeout_s=10, migrate=False)
    try:
        return [
            {"collection": c.name, "subjects": c.subjects, "faces": c.faces}
            for c in await store.list_collections()
        ]
    finally:
        await store.close()


def cmd_status(args: argparse.Namespace) -> int:
    from gateway.storage.migrations import applied_versions, pending_versions, schema_version

    with gallery_url(args) as url:
        version = schema_version(url)
        pending = pending_versions(applied_versions(url))
        rows = asyncio.run(_status(url)) if version else []
    print(f"schema version {version}")
    if pending:
        print(
            f"pending migrations: {', '.join(map(str, pending))}"
            " (run `facegate gallery migrate`, or start a gateway with FACEGATE_GALLERY_MIGRATE)"
        )
    for row in rows:
        print(f"  {row['collection']}: {row['subjects']} subjects, {row['faces']} faces")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from gateway.ops.gallery_io import export_collection, open_export_file

    out = open_export_file(args.output)
    try:
        with gallery_url(args) as url:
            subjects, faces = asyncio.run(export_collection(url, args.collection, out))
    except BaseException:
        if out is not sys.stdout:  # no half-written export left behind
            out.close()
            os.unlink(args.output)
        raise
    if out is not sys.stdout:
        out.close()
    print(f"exported {subjects} subjects and {faces} faces of '{args.collection}'", file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from gateway.ops.gallery_io import check_file, import_file, refusal

    # A path that cannot be opened is explained by the CLI's own handler (ops/failures.py).
    with open(args.input, encoding="utf-8") as source:
        try:
            check = check_file(source, args.collection)
        except UnicodeDecodeError as exc:
            raise GalleryCommandError(f"{args.input} is not UTF-8 text: not an export") from exc
        for note in check.notes:
            print(f"note: {note}", file=sys.stderr)
        if check.problems:
            raise GalleryCommandError(refusal(check))
        source.seek(0)
        name = args.collection or str(check.header["collection"])
        with gallery_url(args) as url:
            count = asyncio.run(import_file(url, source, check, name))
    print(
        f"imported {len(check.subjects)} subjects and {count} faces into '{name}'",
        file=sys.stderr,
    )
    return 0


def _add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", default="", help="libpq URL of the database (default $FACEGATE_GALLERY_URL)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"embedded PostgreSQL folder when no URL is given (default {default_data_dir()})",
    )
    parser.add_argument(
        "--shared-buffers",
        default=DEFAULT_SHARED_BUFFERS,
        help="shared_buffers of the embedded PostgreSQL (default %(default)s); ignored with a URL",
    )


def subparser_init(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    gallery = subparsers.add_parser(
        "gallery",
        help="face gallery database: migrate, status, export, import, bench, audit",
        description="Operate the face gallery's PostgreSQL: FACEGATE_GALLERY_URL (or --url) when "
        "set, else the embedded PostgreSQL in --data-dir (started for the command).",
    )
    actions = gallery.add_subparsers(dest="gallery_command", required=True)
    add_audit_parser(actions, _add_target).set_defaults(func=cmd)
    migrate = actions.add_parser("migrate", help="apply pending schema migrations")
    _add_target(migrate)
    migrate.set_defaults(func=cmd)
    status = actions.add_parser("status", help="schema version and collection sizes")
    _add_target(status)
    status.set_defaults(func=cmd)
    export = actions.add_parser(
        "export",
        help="write a collection as JSON lines (embeddings: biometric data, keep it safe)",
    )
    _add_target(export)
    export.add_argument("collection", help="name of the collection to export")
    export.add_argument(
        "-o",
        "--output",
        default="-",
        help="a new file (created 0600, never overwritten), or - for stdout (not a terminal)",
    )
    export.set_defaults(func=cmd)
    imp = actions.add_parser(
        "import",
        help="load a JSON-lines export into a new collection (checked whole first)",
        description="Reads the whole file first and refuses it, saying every problem by line, "
        "when a name is one the API would refuse, an embedding is not 512 finite numbers, or "
        "(format 2) its checksum or counts do not match: nothing is written then. A failure "
        "part-way erases the new collection again.",
    )
    _add_target(imp)
    imp.add_argument("input", help="file written by `facegate gallery export`")
    imp.add_argument("--collection", default=None, help="name it differently from the export")
    imp.set_defaults(func=cmd)
    bench = actions.add_parser(
        "bench",
        help="load N synthetic faces, build the index, measure identify latency and recall",
        description="Load N synthetic faces by COPY, build the HNSW index, then measure "
        "identify (embedding in): p50/p95 at c=1, throughput at c=8, recall@1/@10 against an "
        "exact search, identification rate. --distribution uniform is the worst case for any "
        "ANN index; clustered models a real gallery (subjects with several faces).",
    )
    _add_target(bench)
    bench.add_argument(
        "--faces", type=positive_int, default=100_000, help="faces to load (1000000 for 1M)"
    )
    bench.add_argument(
        "--queries", type=positive_int, default=300, help="identify queries measured"
    )
    bench.add_argument("--seed", type=int, default=0, help="random seed of vectors and queries")
    bench.add_argument("--keep", action="store_true", help="keep the bench collection afterwards")
    bench.add_argument(
        "--ef-search",
        default="40,100,200",
        help="comma-separated HNSW search breadths to measure (default 40,100,200)",
    )
    bench.add_argument(
        "--distribution",
        choices=("uniform", "clustered"),
        default="uniform",
        help="uniform: one random unit vector per subject (worst case); clustered: subjects "
        "with several faces, queries are new photos of enrolled subjects (default %(default)s)",
    )
    bench.add_argument(
        "--faces-per-subject",
        type=positive_int,
        default=5,
        help="faces of each subject with --distribution clustered (default %(default)s)",
    )
    bench.add_argument(
        "--maintenance-work-mem",
        default="2GB",
        help="memory of the index build; the graph must fit (~1.5 KiB per face) or the build "
        "slows down many times (default %(default)s; 4GB for 1M faces)",
    )
    bench.add_argument(
        "--exact",
        action="store_true",
        help="also measure an exact scan of the collection (no index): where it beats HNSW",
    )
    _add_statement_timeout(bench)
    _add_live_flag(bench)
    bench.set_defaults(func=cmd)
    _add_bench_http(actions)
    _add_bench_tenants(actions)
    from gateway.ops.commands.cluster import add_bench_cluster

    add_bench_cluster(actions, _add_target, cmd)


def _add_bench_tenants(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tenants = actions.add_parser(
        "bench-tenants",
        help="many collections at once: mixed identify/enrol at concurrency C, parallel creates",
        description="Create N collections of a few synthetic faces each (named tenants-*), "
        "run identify and enrolment by embedding through the store at concurrency C against "
        "collections picked at random, then create P collections at once. Reports p50/p95/p99 "
        "per kind, every error, and what the creates answered. Compare N=2 with N=5000.",
    )
    _add_target(tenants)
    tenants.add_argument("--collections", type=positive_int, default=2, help="N (default 2)")
    tenants.add_argument(
        "--faces-per-collection", type=positive_int, default=20, help="default %(default)s"
    )
    tenants.add_argument("--concurrency", type=positive_int, default=32, help="default 32")
    tenants.add_argument("--calls", type=positive_int, default=2000, help="mixed calls measured")
    tenants.add_argument(
        "--parallel-creates", type=positive_int, default=20, help="default %(default)s"
    )
    _add_statement_timeout(tenants)
    tenants.add_argument("--keep", action="store_true", help="keep the collections afterwards")
    _add_live_flag(tenants)
    tenants.set_defaults(func=cmd)


def _add_statement_timeout(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--statement-timeout-s",
        type=float,
        default=10.0,
        help="the store's per-call bound, as FACEGATE_GALLERY_STATEMENT_TIMEOUT_S (default 10)",
    )


def _check_statement_timeout(args: argparse.Namespace) -> None:
    if not 0 < args.statement_timeout_s <= 600:
        raise GalleryCommandError("--statement-timeout-s takes seconds from 0 to 600, like 10")


def _add_live_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--i-know-this-is-live",
        dest="allow_foreign",
        action="store_true",
        help="run even though the database holds other collections (refused by default: the "
        "bench competes with their traffic for CPU and memory)",
    )


def _add_bench_http(actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench_http = actions.add_parser(
        "bench-http",
        help="identify from an image vs detect+embed on a running gateway (the p50 ratio)",
        description="Against a running gateway (e.g. `facegate serve`): bulk-load a synthetic "
        "gallery into a collection it creates, then alternate POST /v1/detect?embed=true and "
        "POST /v1/collections/{c}/identify on the same image and report both p50s and their "
        "ratio. The database is --url / FACEGATE_GALLERY_URL, else the embedded PostgreSQL of "
        "`facegate serve` in --data-dir (already running: it is not started here).",
    )
    _add_target(bench_http)
    bench_http.add_argument(
        "--gateway", default="http://127.0.0.1:8080", help="gateway base URL (default %(default)s)"
    )
    bench_http.add_argument(
        "--key",
        default=os.environ.get("FACEGATE_BENCH_KEY", ""),
        help="API key with the admin or enroll scope (default $FACEGATE_BENCH_KEY)",
    )
    bench_http.add_argument(
        "--image",
        type=Path,
        default=None,
        help="image with one face (default: a bright textured square, which only the synthetic "
        "detector sees as a face)",
    )
    bench_http.add_argument("--faces", type=positive_int, default=100_000, help="gallery size")
    bench_http.add_argument(
        "--requests", type=positive_int, default=200, help="measured request pairs"
    )
    bench_http.add_argument("--keep", action="store_true", help="keep the bench collection")
    bench_http.set_defaults(func=cmd)


def cmd(args: argparse.Namespace) -> int:
    import psycopg

    from gateway.errors import FacegateError
    from gateway.ops.bench.gallery import BenchRefused
    from gateway.ops.gallery_io import GalleryFileError

    handlers = {
        "migrate": cmd_migrate,
        "status": cmd_status,
        "export": cmd_export,
        "import": cmd_import,
        "bench": _cmd_bench,
        "bench-http": _cmd_bench_http,
        "bench-tenants": _cmd_bench_tenants,
        "bench-cluster": _cmd_bench_cluster,
        "audit": _cmd_audit,
    }
    try:
        return handlers[args.gallery_command](args)
    except (GalleryCommandError, EmbeddedPostgresError, GalleryFileError, BenchRefused) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except FacegateError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().splitlines()[0]
        print(
            f"error: cannot use the gallery database ({reason}). Check --url or "
            "FACEGATE_GALLERY_URL, and that PostgreSQL runs there and accepts that user.",
            file=sys.stderr,
        )
        return 2


def _cmd_audit(args: argparse.Namespace) -> int:
    if args.file is not None:
        return cmd_audit(args)
    with gallery_url(args) as url:
        return asyncio.run(read_table(url, args))


def _cmd_bench(args: argparse.Namespace) -> int:
    from gateway.ops.bench.gallery import BenchOptions, bench_gallery, report_lines

    try:
        breadths = tuple(int(v) for v in args.ef_search.split(","))
    except ValueError as exc:
        raise GalleryCommandError("--ef-search takes numbers like 40,100,200") from exc
    if not breadths or min(breadths) < 1 or max(breadths) > 1000:
        raise GalleryCommandError("--ef-search takes numbers from 1 to 1000, like 40,100,200")
    _check_statement_timeout(args)
    options = BenchOptions(
        faces=args.faces,
        queries=args.queries,
        seed=args.seed,
        keep=args.keep,
        ef_searches=breadths,
        distribution=args.distribution,
        faces_per_subject=args.faces_per_subject,
        maintenance_work_mem=args.maintenance_work_mem,
        progress=True,
        allow_foreign=args.allow_foreign,
        statement_timeout_s=args.statement_timeout_s,
        exact=args.exact,
    )
    with gallery_url(args) as url:
        print(f"loading {args.faces} {args.distribution} faces, then measuring...", file=sys.stderr)
        result = bench_gallery(url, options)
    print("\n".join(report_lines(result)))
    return 0


def _cmd_bench_tenants(args: argparse.Namespace) -> int:
    from gateway.ops.bench.gallery_tenants import (
        TenantsOptions,
        bench_tenants,
        tenants_report_lines,
    )

    _check_statement_timeout(args)
    options = TenantsOptions(
        collections=args.collections,
        faces_per_collection=args.faces_per_collection,
        concurrency=args.concurrency,
        calls=args.calls,
        parallel_creates=args.parallel_creates,
        statement_timeout_s=args.statement_timeout_s,
        keep=args.keep,
        progress=True,
        allow_foreign=args.allow_foreign,
    )
    with gallery_url(args) as url:
        result = bench_tenants(url, options)
    print("\n".join(tenants_report_lines(result, options)))
    return 0


def _cmd_bench_cluster(args: argparse.Namespace) -> int:
    from gateway.ops.commands.cluster import run_bench_cluster

    with gallery_url(args) as url:
        return run_bench_cluster(url, args)


def _square_png() -> bytes:
    """A dark 640x640 image with one bright textured 128 px square (a synthetic "face")."""
    import cv2
    import numpy as np

    img = np.zeros((640, 640, 3), np.uint8)
    texture = np.random.default_rng(0).integers(170, 256, (16, 16, 3), dtype=np.uint8)
    img[256:384, 256:384] = cv2.resize(texture, (128, 128), interpolation=cv2.INTER_NEAREST)
    ok, png = cv2.imencode(".png", img)
    assert ok
    return png.tobytes()


def _cmd_bench_http(args: argparse.Namespace) -> int:
    from gateway.ops.bench.gallery_http import (
        GalleryHttpBenchError,
        HttpBenchOptions,
        bench_identify_http,
        http_report_lines,
    )

    if not args.key:
        raise GalleryCommandError("give an admin or enroll key: --key or $FACEGATE_BENCH_KEY")
    url = args.url or os.environ.get("FACEGATE_GALLERY_URL", "")
    if not url:
        server = EmbeddedPostgres(PostgresOptions(data_dir=args.data_dir or default_data_dir()))
        if not server.password_file.exists():
            raise GalleryCommandError(
                f"no embedded PostgreSQL in {server.options.data_dir}: give --url, or the "
                "--data-dir of the running `facegate serve` (its --gallery-dir)"
            )
        url = server.url()
    try:
        image = args.image.read_bytes() if args.image else _square_png()
    except OSError as exc:
        raise GalleryCommandError(f"cannot read {args.image}: {exc.strerror}") from exc
    options = HttpBenchOptions(
        gateway_url=args.gateway,
        api_key=args.key,
        database_url=url,
        image=image,
        faces=args.faces,
        requests=args.requests,
        keep=args.keep,
    )
    import httpx

    try:
        result = bench_identify_http(options)
    except GalleryHttpBenchError as exc:
        raise GalleryCommandError(str(exc)) from exc
    except httpx.TransportError as exc:
        raise GalleryCommandError(
            f"cannot reach the gateway at {args.gateway} ({type(exc).__name__}): start it "
            "(`facegate serve`) or give --gateway"
        ) from exc
    print("\n".join(http_report_lines(result)))
    return 0
