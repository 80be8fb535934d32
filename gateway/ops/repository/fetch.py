"""Download and verify a pack's upstream files: the download half of `facegate models fetch`.

Optional files (genderage, the liveness addon: packs.OPTIONAL_ROLES) that cannot be downloaded
or fail their pin are skipped with a warning that says how to add them later; the rest installs.

Files land in `<staging_dir>/.partial/` first. Every one is checked against its pinned sha256
(`packs.py`), and only when all of them pass are they moved to `<staging_dir>/<upstream name>`,
so a failure installs nothing. Plain HTTPS downloads resume from `<name>.part` with an HTTP
Range request (and start over when the server ignores it); hub downloads go through
huggingface_hub, which resumes its own `.incomplete` files and honours `HF_ENDPOINT`.

Error tree (foreign exceptions are translated here, `raise ... from exc`):

    FetchError
    ├── SourceUnreachable   no connection to the host: offline, DNS, refused, timed out
    ├── ChecksumMismatch    a file's sha256 is not the pinned one
    └── MissingFile         the source has no such file (HTTP 404, not in the zip, not in DIR)
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from tqdm import tqdm

from gateway import __version__
from gateway.ops.repository.packs import (
    ADDONS,
    OPTIONAL_ROLES,
    PACKS,
    ROLES,
    SWAPPERS,
    ModelFile,
    Pack,
    select_files,
)

logger = logging.getLogger(__name__)

SOURCES = ("hf", "url")
DEFAULT_TIMEOUT_S = 30.0
# Attempts per plain HTTPS file; each one after the first resumes where the last stopped.
MAX_ATTEMPTS = 5
PARTIAL_DIRNAME = ".partial"
OFFLINE_HINT = "are you offline? Download the files elsewhere and use `facegate models import DIR`"

_CHUNK_BYTES = 1 << 20
_USER_AGENT = f"facegate/{__version__}"
_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(\d+|\*)")


class FetchError(Exception):
    """A model file could not be fetched, found or trusted."""


class SourceUnreachable(FetchError):
    """The host could not be reached at all."""

    def __init__(self, host: str) -> None:
        super().__init__(f"cannot reach {host}: {OFFLINE_HINT}")
        self.host = host


class ChecksumMismatch(FetchError):
    """A file's sha256 differs from the pinned one."""

    def __init__(self, path: Path, expected: str, actual: str) -> None:
        super().__init__(
            f"{path.name}: sha256 mismatch: expected {expected}, got {actual} ({path})"
        )
        self.path = path
        self.expected = expected
        self.actual = actual


class MissingFile(FetchError):
    """The source does not have the file."""


def sha256_file(path: Path) -> str:
    """Return the lowercase hex sha256 of the file at `path`."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    """Raise ChecksumMismatch unless the file at `path` has sha256 `expected` (hex)."""
    actual = sha256_file(path)
    if actual != expected.lower():
        raise ChecksumMismatch(path, expected.lower(), actual)


def fetch_pack(
    pack: str,
    swapper: str | None,
    source: str,
    staging_dir: Path,
    *,
    hf_endpoint: str | None = None,
    url_overrides: Mapping[str, str] | None = None,
    progress: bool = True,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    packs: Mapping[str, Pack] = PACKS,
    swappers: Mapping[str, ModelFile] = SWAPPERS,
    addons: Mapping[str, ModelFile] = ADDONS,
) -> dict[str, Path]:
    """Download the pack's files (and the swapper and the addons), verified, into staging_dir.

    Returns role ("detector", "recognizer", "swapper", "genderage", "liveness") ->
    `staging_dir/<upstream file name>`; an optional role that could not be had is absent.
    `source` is "hf" (huggingface_hub; `hf_endpoint` overrides HF_ENDPOINT; files without a
    hub mirror come from their URL) or "url" (plain HTTPS; `url_overrides` maps a role to
    another URL, read as a zip holding the upstream file name when its path ends in .zip).
    A file already in staging_dir with the pinned digest is kept. `timeout_s` bounds
    connecting and each read (for the hub, its metadata requests; huggingface_hub reads
    HF_HUB_DOWNLOAD_TIMEOUT for the body). Raises FetchError;
    then nothing new is in staging_dir, and partial downloads stay under
    `staging_dir/.partial/` for the next attempt to resume.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
    overrides = dict(url_overrides or {})
    if overrides and source != "url":
        raise ValueError("url_overrides apply to the 'url' source only")
    if unknown := sorted(set(overrides) - set(ROLES)):
        raise ValueError(f"url_overrides for unknown roles {unknown}; roles: {', '.join(ROLES)}")
    files = select_files(pack, swapper, packs=packs, swappers=swappers, addons=addons)

    partial = staging_dir / PARTIAL_DIRNAME
    partial.mkdir(parents=True, exist_ok=True)
    pending = {role: f for role, f in files.items() if not _is_installed(staging_dir, f)}
    downloaded: dict[str, Path] = {}
    by_url = dict(pending)
    if source == "hf":
        by_url = {role: f for role, f in pending.items() if f.hf is None}
        for role, f in pending.items():
            if role in by_url:
                continue
            try:
                downloaded[role] = _download_from_hub(f, partial, hf_endpoint, progress, timeout_s)
            except FetchError as exc:
                if role not in OPTIONAL_ROLES:
                    raise
                _warn_skipped(f, str(exc))
    downloaded.update(_download_from_urls(by_url, partial, overrides, progress, timeout_s))

    _drop_unverified_optional(downloaded, pending)
    _install_verified(downloaded, pending, staging_dir)
    shutil.rmtree(partial, ignore_errors=True)
    return {
        role: staging_dir / f.filename
        for role, f in files.items()
        if role in downloaded or role not in pending
    }


def _drop_unverified_optional(
    downloaded: dict[str, Path], pending: Mapping[str, ModelFile]
) -> None:
    """An optional file (genderage) that fails its pin is dropped with a warning, not fatal:
    the pack's detector and recognizer still install."""
    for role in [r for r in downloaded if r in OPTIONAL_ROLES]:
        path = downloaded[role]
        if sha256_file(path) != pending[role].sha256:
            _warn_skipped(pending[role], f"its sha256 is not the pinned {pending[role].sha256}")
            path.unlink(missing_ok=True)
            del downloaded[role]


# What each optional model serves, for the warning that says what goes missing without it.
_OPTIONAL_FEATURES = {
    "genderage": "gender and age (/v1/detect?attributes=true)",
    "liveness": "liveness (/v1/detect?liveness=true)",
    "landmark_2d_106": "dense 2-D landmarks (/v1/detect?dense_landmarks=true)",
    "landmark_3d_68": "head pose and 3-D landmarks (/v1/detect?pose=true, dense_landmarks=true)",
}


def _warn_skipped(f: ModelFile, why: str) -> None:
    where = f"{f.url.url} (take {f.filename} from the zip)" if f.url.archive else f.url.url
    logger.warning(
        "skipping optional %s: %s. Everything else installs; %s answers 503 until you add it: "
        "download %s yourself and run `facegate models install %s FILE`",
        f.filename,
        why,
        _OPTIONAL_FEATURES.get(f.role, f.role),
        where,
        f.role,
    )


def find_pack_files(
    directory: Path,
    pack: str,
    swapper: str | None,
    *,
    verify: bool = True,
    packs: Mapping[str, Pack] = PACKS,
    swappers: Mapping[str, ModelFile] = SWAPPERS,
    addons: Mapping[str, ModelFile] = ADDONS,
) -> dict[str, Path]:
    """Find the pack's files, named as upstream, in `directory` or `directory/<pack>/`.

    Returns role -> path. Optional files (genderage, 2d106det, 1k3d68, liveness.onnx) are
    taken when they are there. Raises MissingFile naming every required file not found, and, unless `verify` is
    false (re-exported files), ChecksumMismatch for a required file with another digest; an
    optional one with another digest is skipped with a warning.
    """
    files = select_files(pack, swapper, packs=packs, swappers=swappers, addons=addons)
    places = (directory, directory / pack)
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role, f in files.items():
        path = next((p / f.filename for p in places if (p / f.filename).is_file()), None)
        if path is None and role in OPTIONAL_ROLES:
            continue  # e.g. no genderage.onnx: everything but age/gender still serves
        if path is None:
            missing.append(f.filename)
        else:
            found[role] = path
    if missing:
        raise MissingFile(f"{', '.join(missing)} not found in {directory} or {directory / pack}")
    if verify:
        for role, path in list(found.items()):
            try:
                verify_sha256(path, files[role].sha256)
            except ChecksumMismatch as exc:
                if role not in OPTIONAL_ROLES:
                    raise
                _warn_skipped(files[role], f"{exc} (--no-verify takes it as it is)")
                del found[role]
    return found


def _install_verified(
    downloaded: Mapping[str, Path], pending: Mapping[str, ModelFile], staging_dir: Path
) -> None:
    """Verify every downloaded file, then move them all into staging_dir; or move none."""
    for role, path in downloaded.items():
        try:
            verify_sha256(path, pending[role].sha256)
        except ChecksumMismatch:
            # Bytes that fail verification are worth nothing to a later attempt.
            path.unlink(missing_ok=True)
            raise
    for role, path in downloaded.items():
        os.replace(path, staging_dir / pending[role].filename)


def _is_installed(staging_dir: Path, f: ModelFile) -> bool:
    path = staging_dir / f.filename
    if path.is_file() and sha256_file(path) == f.sha256:
        logger.info("%s is already in %s with the pinned sha256", f.filename, staging_dir)
        return True
    return False


def _progress_bar(desc: str, total: int | None, initial: int, enabled: bool) -> tqdm:
    return tqdm(
        desc=desc,
        total=total,
        initial=initial,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        disable=not enabled,
    )


class _HiddenBar(tqdm):  # type: ignore[misc]  # tqdm ships no type information
    """A progress bar huggingface_hub can drive that never draws."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["disable"] = True
        super().__init__(*args, **kwargs)


def _download_from_hub(
    f: ModelFile, partial: Path, endpoint: str | None, progress: bool, timeout_s: float
) -> Path:
    # Imported here: huggingface_hub is slow to import and only this source needs it.
    import httpx2
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    src = f.hf
    if src is None:
        raise ValueError(f"{f.filename} has no hub mirror: download it from {f.url.url}")
    url = hf_hub_url(src.repo_id, src.path_in_repo, revision=src.revision, endpoint=endpoint)
    host = urlsplit(url).netloc
    try:
        # One HEAD first: on a refused connection hf_hub_download retries with backoff for
        # about 25 s before it gives up, and then says only that the file is not cached.
        get_hf_file_metadata(url, timeout=timeout_s, endpoint=endpoint)
        local = hf_hub_download(
            src.repo_id,
            src.path_in_repo,
            revision=src.revision,
            local_dir=partial / "hf",
            endpoint=endpoint,
            etag_timeout=timeout_s,
            tqdm_class=tqdm if progress else _HiddenBar,
        )
    except (httpx2.TransportError, LocalEntryNotFoundError) as exc:
        raise SourceUnreachable(host) from exc
    except (RepositoryNotFoundError, RevisionNotFoundError, RemoteEntryNotFoundError) as exc:
        raise MissingFile(
            f"{host} has no {src.path_in_repo} in {src.repo_id} at {src.revision}"
        ) from exc
    except HfHubHTTPError as exc:
        raise FetchError(f"{host} refused {src.repo_id}/{src.path_in_repo}: {exc}") from exc
    except OSError as exc:
        raise FetchError(f"download of {f.filename} from {host} failed: {exc}") from exc
    return Path(str(local))


def _download_from_urls(
    pending: Mapping[str, ModelFile],
    partial: Path,
    overrides: Mapping[str, str],
    progress: bool,
    timeout_s: float,
) -> dict[str, Path]:
    # Files are grouped by URL, so a zip holding detector and recognizer is downloaded once.
    groups: dict[tuple[str, bool], list[ModelFile]] = {}
    for role, f in pending.items():
        if role in overrides:
            url = overrides[role]
            archive = urlsplit(url).path.lower().endswith(".zip")
        else:
            url, archive = f.url.url, f.url.archive
        groups.setdefault((url, archive), []).append(f)

    downloaded: dict[str, Path] = {}
    for (url, archive), group in groups.items():
        if archive:
            name = PurePosixPath(urlsplit(url).path).name or "archive.zip"
            zip_path = download_url(url, partial / name, progress=progress, timeout_s=timeout_s)
            try:
                downloaded.update(_extract_members(zip_path, group, partial))
            finally:
                # Extracted or unusable, the archive is no longer needed.
                zip_path.unlink(missing_ok=True)
        else:
            for f in group:
                try:
                    downloaded[f.role] = download_url(
                        url,
                        partial / f.filename,
                        size_bytes=f.size_bytes,
                        progress=progress,
                        timeout_s=timeout_s,
                    )
                except FetchError as exc:
                    if f.role not in OPTIONAL_ROLES:
                        raise
                    _warn_skipped(f, str(exc))
    return downloaded


def _extract_members(zip_path: Path, files: list[ModelFile], out_dir: Path) -> dict[str, Path]:
    extracted: dict[str, Path] = {}
    try:
        with zipfile.ZipFile(zip_path) as archive:
            members: dict[str, zipfile.ZipInfo] = {}
            for info in archive.infolist():
                if not info.is_dir():
                    members.setdefault(PurePosixPath(info.filename).name, info)
            for f in files:
                if f.filename not in members and f.role in OPTIONAL_ROLES:
                    _warn_skipped(f, f"not in {zip_path.name}")
                    continue
                if f.filename not in members:
                    raise MissingFile(f"{zip_path.name} has no {f.filename}")
                dest = out_dir / f.filename
                with archive.open(members[f.filename]) as src, dest.open("wb") as out:
                    shutil.copyfileobj(src, out, _CHUNK_BYTES)
                extracted[f.role] = dest
    except zipfile.BadZipFile as exc:
        raise FetchError(f"{zip_path.name} is not a readable zip archive: {exc}") from exc
    return extracted


def download_url(
    url: str,
    dest: Path,
    *,
    size_bytes: int | None = None,
    progress: bool = True,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Download `url` to `dest` through `dest.part`, resuming an earlier partial download.

    A dropped connection or short body is resumed with an HTTP Range request, up to
    MAX_ATTEMPTS times; a server that ignores Range is read from the start. `size_bytes` is
    only the progress total when the server sends no length. Returns `dest`.
    """
    part = dest.with_name(dest.name + ".part")
    for attempt in range(1, MAX_ATTEMPTS + 1):
        offset = part.stat().st_size if part.exists() else 0
        try:
            complete = _get_into(url, part, offset, size_bytes, progress, timeout_s)
        except (http.client.HTTPException, ConnectionError, TimeoutError) as exc:
            logger.warning(
                "%s: interrupted (%s), attempt %d of %d", dest.name, exc, attempt, MAX_ATTEMPTS
            )
            continue
        if complete:
            os.replace(part, dest)
            return dest
        logger.warning("%s: incomplete, attempt %d of %d", dest.name, attempt, MAX_ATTEMPTS)
    raise FetchError(
        f"download of {url} kept breaking off after {MAX_ATTEMPTS} attempts; "
        f"run the command again to resume from {part}"
    )


def _get_into(
    url: str, part: Path, offset: int, size_bytes: int | None, progress: bool, timeout_s: float
) -> bool:
    """One GET into `part` from `offset`; True when `part` then holds the whole file."""
    host = urlsplit(url).netloc
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout_s
        )
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            # The part file is not a proper prefix of this file: start over.
            part.unlink()
            return False
        if exc.code == 404:
            raise MissingFile(f"{url} does not exist (HTTP 404)") from exc
        raise FetchError(f"{host} answered HTTP {exc.code} for {url}") from exc
    except urllib.error.URLError as exc:
        raise SourceUnreachable(host) from exc

    with response:
        if offset and response.status == 206:
            match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
            if match is None or int(match.group(1)) != offset:
                part.unlink()
                return False
            mode = "ab"
        else:
            if offset:
                logger.info("%s ignored the Range request; downloading from the start", host)
            offset, mode = 0, "wb"
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else size_bytes
        received = offset
        with part.open(mode) as out, _progress_bar(part.stem, total, offset, progress) as bar:
            while chunk := response.read(_CHUNK_BYTES):
                out.write(chunk)
                bar.update(len(chunk))
                received += len(chunk)
    return total is None or received >= total
