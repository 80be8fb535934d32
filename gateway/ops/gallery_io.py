"""`facegate gallery export` and `import`: a collection as JSON lines, checked both ways.

Format 2 (format 1, faces only, is still read):

    {"format": "facegate-gallery/2", "collection", "metadata", "recognizer_sha256",
     "subjects": N, "faces": M}                                   the header
    {"kind": "subject", "subject", "metadata"}                    every subject, faceless too
    {"kind": "face", "subject" (null: unassigned), "embedding", "bbox", "score"}
    {"kind": "end", "subjects": N, "faces": M, "sha256"}          sha256 of every line above

Export reads one snapshot (a REPEATABLE READ transaction), creates its file 0600 with
O_CREAT|O_EXCL (never over an existing file, never readable by others even for a moment) and
refuses to write embeddings to a terminal. Import reads the whole file once before writing
anything: names as the API takes them, metadata, embeddings, and for format 2 the counts and
the checksum, which covers the header's recognizer: a file cut short or edited after export
(a recognizer changed to pass the guard) is refused. It says every problem it found, by line.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, TextIO

import numpy as np

from gateway.gallery_ports import EMBEDDING_DIM, NewFace
from gateway.gallery_schemas import COLLECTION_NAME_PATTERN, MAX_METADATA_KEYS
from gateway.service.gallery import min_quality_problem
from gateway.storage.postgres import open_store

EXPORT_FORMAT = "facegate-gallery/2"
OLD_FORMAT = "facegate-gallery/1"
IMPORT_BATCH = 1000
# The API's subject names: a path segment of 1 to 256 characters (so no "/").
MAX_SUBJECT_CHARS = 256
SHOWN_PROBLEMS = 20
# A recognizer identity: a prepared model's sha256, or a name a bench or a setting gave.
_RECOGNIZER = re.compile(r"^[\x21-\x7e]{1,128}$")


def _progress(message: str) -> None:
    sys.stderr.write(f"\r{message}")
    sys.stderr.flush()


class GalleryFileError(Exception):
    """An export or import refused; the message says why and what to do."""


def open_export_file(path: str) -> TextIO:
    """The export's output: a new 0600 file, or stdout unless that is a terminal."""
    if path == "-":
        if sys.stdout.isatty():
            raise GalleryFileError(
                "refusing to write embeddings (biometric data) to a terminal: give -o FILE, "
                "or pipe the output"
            )
        return sys.stdout
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError as exc:
        raise GalleryFileError(
            f"{path} exists: export never overwrites a file; remove it or give another -o"
        ) from exc
    except OSError as exc:
        raise GalleryFileError(f"cannot create {path}: {exc.strerror}") from exc
    return os.fdopen(fd, "w", encoding="utf-8")


class _Writer:
    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._digest = hashlib.sha256()

    def line(self, value: dict[str, Any]) -> None:
        text = json.dumps(value, separators=(",", ":")) + "\n"
        self._digest.update(text.encode())
        self._out.write(text)

    def end(self, subjects: int, faces: int) -> None:
        trailer = {"kind": "end", "subjects": subjects, "faces": faces}
        self._out.write(json.dumps({**trailer, "sha256": self._digest.hexdigest()}) + "\n")


async def export_collection(url: str, collection: str, out: IO[str]) -> tuple[int, int]:
    """Write the collection to `out` from one snapshot; (subjects, faces) written."""
    store = await open_store(url, pool_size=1, timeout_s=10, migrate=False)
    writer = _Writer(out)
    subjects = faces = 0
    try:
        async with store.snapshot(collection) as snapshot:
            meta = snapshot.collection
            writer.line(
                {
                    "format": EXPORT_FORMAT,
                    "collection": meta.name,
                    "metadata": dict(meta.metadata),
                    "recognizer_sha256": meta.recognizer_sha256,
                    "subjects": meta.subjects,
                    "faces": meta.faces,
                }
            )
            async for name, metadata in snapshot.subjects():
                writer.line({"kind": "subject", "subject": name, "metadata": dict(metadata)})
                subjects += 1
            async for face in snapshot.faces():
                writer.line(
                    {
                        "kind": "face",
                        "subject": face.subject,
                        # Full precision: an import then stores the very same half-precision
                        # values.
                        "embedding": [float(v) for v in face.embedding],
                        "bbox": list(face.bbox) if face.bbox is not None else None,
                        "score": face.score,
                    }
                )
                faces += 1
                if faces % 10_000 == 0:
                    _progress(f"exported {faces} faces")
        writer.end(subjects, faces)
    finally:
        await store.close()
    return subjects, faces


@dataclass
class ImportCheck:
    """What a read of the whole file found: the header, subjects' metadata, problems."""

    header: dict[str, Any] = field(default_factory=dict)
    subjects: dict[str, dict[str, Any]] = field(default_factory=dict)
    faces: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _subject_problem(value: object) -> str | None:
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_SUBJECT_CHARS:
        return f"a subject name is 1 to {MAX_SUBJECT_CHARS} characters, not {str(value)[:80]!r}"
    if "/" in value or "\x00" in value:
        return f"subject name {value[:80]!r} has a '/' or NUL, which the API cannot address"
    return None


def _metadata_problem(value: object) -> str | None:
    if not isinstance(value, dict):
        return "metadata is a JSON object"
    if len(value) > MAX_METADATA_KEYS:
        return f"metadata has {len(value)} keys; the API takes at most {MAX_METADATA_KEYS}"
    return None


def _collection_metadata_problem(value: object) -> str | None:
    """A subject's metadata is free-form; only a collection's min_quality means something."""
    bad = _metadata_problem(value)
    if bad or not isinstance(value, dict):
        return bad
    problem = min_quality_problem(value)
    return f"metadata: {problem}" if problem else None


def _face(line: dict[str, Any]) -> tuple[NewFace | None, str | None]:
    """The face of a line, or the problem with it."""
    try:
        embedding = np.asarray(line["embedding"], dtype=np.float32)
    except (KeyError, TypeError, ValueError):
        return None, "a face needs an embedding of numbers"
    if embedding.shape != (EMBEDDING_DIM,) or not np.all(np.isfinite(embedding)):
        return None, f"the embedding is not {EMBEDDING_DIM} finite numbers"
    norm = float(np.linalg.norm(embedding))
    if norm < 1e-6:
        return None, "the embedding is all zeros"
    bbox, score = line.get("bbox"), line.get("score")
    numbers = (int, float)
    if bbox is not None and (
        not isinstance(bbox, list)
        or len(bbox) != 4
        or not all(isinstance(v, numbers) and math.isfinite(v) for v in bbox)
    ):
        return None, "bbox is null or 4 finite numbers"
    if score is not None and not (isinstance(score, numbers) and math.isfinite(score)):
        return None, "score is null or a finite number"
    # Stored vectors are unit length to half precision: keep them bit for bit, and normalise
    # only vectors from elsewhere.
    unit = embedding if abs(norm - 1.0) < 1e-2 else embedding / norm
    box = (float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3])) if bbox else None
    return NewFace(unit.astype(np.float32), box, score), None


def _lines(source: IO[str]) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(source, start=1):
        if raw.strip():
            yield number, raw


def check_file(source: IO[str], rename: str | None) -> ImportCheck:
    """Read the whole export and list every problem (nothing is written)."""
    check = ImportCheck()
    problem = check.problems.append
    digest = hashlib.sha256()
    trailer: dict[str, Any] | None = None
    listed = 0
    for number, raw in _lines(source):
        try:
            line = json.loads(raw)
        except ValueError:
            problem(f"line {number}: not JSON")
            continue
        if not isinstance(line, dict):
            problem(f"line {number}: not a JSON object")
            continue
        if number == 1:
            check.header = line
            digest.update(raw.encode())
            continue
        if trailer is not None:
            problem(f"line {number}: data after the end line")
            continue
        kind = line.get("kind", "face")
        if kind == "end":
            trailer = line
            continue
        digest.update(raw.encode())
        if kind == "subject":
            listed += 1
            bad = _subject_problem(line.get("subject")) or _metadata_problem(
                line.get("metadata", {})
            )
            if bad:
                problem(f"line {number}: {bad}")
            else:
                check.subjects[line["subject"]] = dict(line.get("metadata") or {})
            continue
        subject = line.get("subject")
        bad = None
        if subject is not None or check.header.get("format") == OLD_FORMAT:
            bad = _subject_problem(subject)
        _, face_problem = _face(line)
        bad = bad or face_problem
        if bad is None and "subject_metadata" in line:  # format 1 carries it per face
            bad = _metadata_problem(line["subject_metadata"])
            if bad is None and isinstance(subject, str) and subject not in check.subjects:
                check.subjects[subject] = dict(line["subject_metadata"] or {})
        if bad:
            problem(f"line {number}: {bad}")
        else:
            check.faces += 1
            if subject is not None:
                check.subjects.setdefault(subject, {})
    _check_header(check, rename)
    fmt = check.header.get("format")
    if fmt == EXPORT_FORMAT:
        if trailer is None:
            problem("no end line: the file was cut short; export it again")
        elif trailer.get("sha256") != digest.hexdigest():
            problem(
                "the checksum of the end line does not match: the file was changed after "
                "export (its header's recognizer included); export it again"
            )
        elif (trailer.get("subjects"), trailer.get("faces")) != (listed, check.faces):
            problem("the end line's counts do not match the lines")
    elif fmt == OLD_FORMAT:
        check.notes.append(
            "format 1 has no checksum: its header's recognizer cannot be checked against its "
            "content, and subjects without faces were not exported"
        )
    return check


def _check_header(check: ImportCheck, rename: str | None) -> None:
    header, problem = check.header, check.problems.append
    if header.get("format") not in (EXPORT_FORMAT, OLD_FORMAT):
        problem(f"line 1: not a facegate gallery export (format {EXPORT_FORMAT})")
        return
    name = rename or header.get("collection")
    if not isinstance(name, str) or not re.match(COLLECTION_NAME_PATTERN, name):
        problem(
            f"collection name {str(name)[:80]!r} is not one the API takes (letters, digits, "
            "_ . -, up to 64): give --collection NAME"
        )
    if not _RECOGNIZER.match(str(header.get("recognizer_sha256", ""))):
        problem("line 1: recognizer_sha256 is missing or not a recognizer's sha256")
    bad = _collection_metadata_problem(header.get("metadata", {}))
    if bad:
        problem(f"line 1: {bad}")


def refusal(check: ImportCheck) -> str:
    shown = check.problems[:SHOWN_PROBLEMS]
    more = len(check.problems) - len(shown)
    return "\n".join(
        [
            f"refused: {len(check.problems)} problem(s), nothing was imported:",
            *(f"  {p}" for p in shown),
            *([f"  ... and {more} more"] if more else []),
        ]
    )


async def import_file(url: str, source: IO[str], check: ImportCheck, name: str) -> int:
    """Create the collection and load the checked file into it; the faces imported.

    A failure part-way erases the collection again, so an import is all or nothing.
    """
    store = await open_store(url, pool_size=1, timeout_s=10, migrate=True)
    header = check.header
    imported = 0
    try:
        await store.create_collection(
            name, header.get("metadata") or {}, header["recognizer_sha256"]
        )
        try:
            for subject, metadata in check.subjects.items():
                await store.put_subject(name, subject, metadata or None)
            pending: dict[str | None, list[NewFace]] = {}
            for number, raw in _lines(source):
                line = json.loads(raw)
                if number == 1 or line.get("kind", "face") != "face":
                    continue
                face, _ = _face(line)
                assert face is not None  # check_file passed
                pending.setdefault(line.get("subject"), []).append(face)
                if sum(len(v) for v in pending.values()) >= IMPORT_BATCH:
                    imported += await _flush(store, name, pending)
                    _progress(f"imported {imported} faces")
            imported += await _flush(store, name, pending)
        except BaseException:
            await store.delete_collection(name)
            raise
    finally:
        await store.close()
    return imported


async def _flush(store: Any, name: str, pending: dict[str | None, list[NewFace]]) -> int:
    await store.add_faces(name, list(pending.items()))
    count = sum(len(v) for v in pending.values())
    pending.clear()
    return count
