"""fetch_pack and find_pack_files against a local HTTP server that plays both sources.

The server serves plain files (honouring Range, ignoring it, or dropping the first GET
halfway) and the part of the Hugging Face hub that hf_hub_download uses: HEAD and GET on
/{repo_id}/resolve/{revision}/{path} with X-Repo-Commit, ETag and Content-Length. The
"models" are random bytes; the catalogue is the production one with only the digests and
sources replaced, so the upstream file names are the real ones.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gateway.ops.repository.fetch import (
    PARTIAL_DIRNAME,
    ChecksumMismatch,
    MissingFile,
    SourceUnreachable,
    fetch_pack,
    find_pack_files,
    verify_sha256,
)
from gateway.ops.repository.packs import (
    ADDONS,
    BUFFALO_L,
    BUFFALO_S,
    INSWAPPER_128,
    LIVENESS_ADDON,
    PACKS,
    SWAPPERS,
    HfSource,
    ModelFile,
    Pack,
    UrlSource,
    pinned_files,
    select_files,
)

HUB_PATH = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[0-9a-f]{40})/(?P<path>.+)$")
REVISION = "0123456789abcdef0123456789abcdef01234567"
HUB_REPO = "test-org/insightface"
PACK = BUFFALO_L.name
SWAPPER = "inswapper_128"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class FakeServer:
    """What the handler serves and what it saw."""

    files: dict[str, bytes] = field(default_factory=dict)
    mode: str = "range"  # "range" | "ignore-range" | "drop-first"
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    gets: dict[str, int] = field(default_factory=dict)
    port: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def range_gets(self, path: str) -> list[str]:
        return [r for m, p, r in self.requests if m == "GET" and p == path and r is not None]


def _handler(state: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self._serve(send_body=False)

        def do_GET(self) -> None:
            self._serve(send_body=True)

        def _serve(self, send_body: bool) -> None:
            requested = self.headers.get("Range")
            state.requests.append((self.command, self.path, requested))
            hub = HUB_PATH.match(self.path)
            data = state.files.get(self.path)
            if data is None:
                self.send_response(404)
                if hub:
                    self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            first_get = False
            if send_body:
                first_get = state.gets.get(self.path, 0) == 0
                state.gets[self.path] = state.gets.get(self.path, 0) + 1

            start = 0
            if requested and state.mode != "ignore-range":
                match = re.fullmatch(r"bytes=(\d+)-", requested)
                assert match is not None, requested
                start = int(match.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            payload = data[start:]
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Accept-Ranges", "bytes")
            if hub:
                self.send_header("X-Repo-Commit", hub["revision"])
                self.send_header("ETag", f'"{sha256(data)}"')
            self.end_headers()
            if not send_body:
                return
            if state.mode == "drop-first" and first_get:
                # Promise the whole body, send half, hang up.
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(payload)

    return Handler


@pytest.fixture
def server() -> Iterator[FakeServer]:
    state = FakeServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@dataclass(frozen=True)
class Catalogue:
    packs: dict[str, Pack]
    swappers: dict[str, ModelFile]
    blobs: dict[str, bytes]  # upstream file name -> bytes
    # Addons (liveness): none unless a test publishes one, so no test reaches the real URL.
    addons: dict[str, ModelFile] = field(default_factory=dict)


def _fake(f: ModelFile, data: bytes, base: str, zip_url: str | None) -> ModelFile:
    folder = f"{PACK}/" if zip_url else ""
    return replace(
        f,
        sha256=sha256(data),
        size_bytes=len(data),
        hf=HfSource(HUB_REPO, f"{folder}{f.filename}", REVISION),
        url=UrlSource(zip_url, archive=True)
        if zip_url
        else UrlSource(f"{base}/files/{f.filename}"),
    )


def publish(state: FakeServer, *, zip_folder: str = "buffalo_l/") -> Catalogue:
    """Serve random buffalo_l and inswapper files; return a catalogue pinning them."""
    blobs = {
        f.filename: os.urandom(size)
        for f, size in (
            (BUFFALO_L.detector, 150_000),
            (BUFFALO_L.recognizer, 300_000),
            (INSWAPPER_128, 200_000),
        )
    }
    zip_url = f"{state.base}/files/{PACK}.zip"
    pack = Pack(
        PACK,
        _fake(BUFFALO_L.detector, blobs["det_10g.onnx"], state.base, zip_url),
        _fake(BUFFALO_L.recognizer, blobs["w600k_r50.onnx"], state.base, zip_url),
    )
    swapper = _fake(INSWAPPER_128, blobs["inswapper_128.onnx"], state.base, None)

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("det_10g.onnx", "w600k_r50.onnx"):
            zf.writestr(f"{zip_folder}{name}", blobs[name])
        zf.writestr(f"{zip_folder}genderage.onnx", os.urandom(1000))  # in the pack, not served
    state.files[f"/files/{PACK}.zip"] = archive.getvalue()
    state.files["/files/inswapper_128.onnx"] = blobs["inswapper_128.onnx"]
    for f in (pack.detector, pack.recognizer, swapper):
        state.files[f"/{HUB_REPO}/resolve/{REVISION}/{f.hf.path_in_repo}"] = blobs[f.filename]
    return Catalogue({PACK: pack}, {SWAPPER: swapper}, blobs)


def run_fetch(cat: Catalogue, source: str, staging: Path, **kwargs: object) -> dict[str, Path]:
    return fetch_pack(
        PACK,
        SWAPPER,
        source,
        staging,
        progress=False,
        timeout_s=5.0,
        packs=cat.packs,
        swappers=cat.swappers,
        addons=cat.addons,
        **kwargs,  # type: ignore[arg-type]
    )


def installed(staging: Path) -> list[str]:
    return sorted(p.name for p in staging.iterdir() if p.is_file())


def assert_installed(result: dict[str, Path], cat: Catalogue, staging: Path) -> None:
    assert set(result) == {"detector", "recognizer", "swapper"}
    for path in result.values():
        assert path.parent == staging
        assert path.read_bytes() == cat.blobs[path.name]
    assert installed(staging) == ["det_10g.onnx", "inswapper_128.onnx", "w600k_r50.onnx"]
    assert not (staging / PARTIAL_DIRNAME).exists()


@pytest.mark.parametrize("zip_folder", ["buffalo_l/", ""])
def test_url_source_takes_only_the_needed_zip_members(
    server: FakeServer, tmp_path: Path, zip_folder: str
) -> None:
    cat = publish(server, zip_folder=zip_folder)
    result = run_fetch(cat, "url", tmp_path)
    assert_installed(result, cat, tmp_path)
    assert result["detector"].name == "det_10g.onnx"
    assert result["swapper"].name == "inswapper_128.onnx"
    # Detector and recognizer share the zip: it is downloaded once.
    assert server.gets[f"/files/{PACK}.zip"] == 1


def test_hub_source_downloads_through_huggingface_hub(server: FakeServer, tmp_path: Path) -> None:
    cat = publish(server)
    result = run_fetch(cat, "hf", tmp_path, hf_endpoint=server.base)
    assert_installed(result, cat, tmp_path)
    assert any(m == "GET" and "/resolve/" in p for m, p, _ in server.requests)


def test_url_overrides_replace_the_pinned_url(server: FakeServer, tmp_path: Path) -> None:
    cat = publish(server)
    server.files["/mirror/inswapper_128.onnx"] = cat.blobs["inswapper_128.onnx"]
    run_fetch(
        cat, "url", tmp_path, url_overrides={"swapper": f"{server.base}/mirror/inswapper_128.onnx"}
    )
    assert server.gets.get("/mirror/inswapper_128.onnx") == 1
    assert "/files/inswapper_128.onnx" not in server.gets


@pytest.mark.parametrize("source", ["url", "hf"])
def test_checksum_mismatch_installs_nothing(
    server: FakeServer, tmp_path: Path, source: str
) -> None:
    cat = publish(server)
    # The recognizer is served with other bytes than the pinned ones; the others are right.
    wrong = os.urandom(300_000)
    pack = cat.packs[PACK]
    cat.packs[PACK] = replace(pack, recognizer=replace(pack.recognizer, sha256=sha256(wrong)))

    with pytest.raises(ChecksumMismatch) as caught:
        run_fetch(cat, source, tmp_path, hf_endpoint=server.base if source == "hf" else None)

    message = str(caught.value)
    assert "w600k_r50.onnx" in message
    assert sha256(wrong) in message
    assert sha256(cat.blobs["w600k_r50.onnx"]) in message
    assert installed(tmp_path) == []
    leftovers = [p.name for p in (tmp_path / PARTIAL_DIRNAME).rglob("*") if p.is_file()]
    assert "w600k_r50.onnx" not in leftovers


def test_dropped_connection_resumes_with_range(server: FakeServer, tmp_path: Path) -> None:
    cat = publish(server)
    server.mode = "drop-first"
    result = run_fetch(cat, "url", tmp_path)

    assert_installed(result, cat, tmp_path)
    size = len(cat.blobs["inswapper_128.onnx"])
    resumed = server.range_gets("/files/inswapper_128.onnx")
    assert resumed == [f"bytes={size // 2}-"]


def test_part_file_from_an_earlier_run_is_resumed(server: FakeServer, tmp_path: Path) -> None:
    cat = publish(server)
    data = cat.blobs["inswapper_128.onnx"]
    partial = tmp_path / PARTIAL_DIRNAME
    partial.mkdir()
    (partial / "inswapper_128.onnx.part").write_bytes(data[:12_345])

    result = run_fetch(cat, "url", tmp_path)

    assert result["swapper"].read_bytes() == data
    assert server.range_gets("/files/inswapper_128.onnx") == ["bytes=12345-"]


def test_server_ignoring_range_restarts_from_zero(server: FakeServer, tmp_path: Path) -> None:
    cat = publish(server)
    server.mode = "ignore-range"
    partial = tmp_path / PARTIAL_DIRNAME
    partial.mkdir()
    # Appending the full body to this would give a wrong file.
    (partial / "inswapper_128.onnx.part").write_bytes(b"stale bytes from elsewhere")

    result = run_fetch(cat, "url", tmp_path)

    assert result["swapper"].read_bytes() == cat.blobs["inswapper_128.onnx"]
    assert server.range_gets("/files/inswapper_128.onnx") == ["bytes=26-"]


def test_verified_files_already_in_staging_are_kept(server: FakeServer, tmp_path: Path) -> None:
    cat = publish(server)
    run_fetch(cat, "url", tmp_path)
    server.requests.clear()
    result = run_fetch(cat, "url", tmp_path)
    assert_installed(result, cat, tmp_path)
    assert server.requests == []


def test_offline_url_source_says_so(tmp_path: Path, closed_port: int) -> None:
    base = f"http://127.0.0.1:{closed_port}"
    unreachable = UrlSource(f"{base}/buffalo_l.zip", archive=True)
    pack = replace(
        BUFFALO_L,
        detector=replace(BUFFALO_L.detector, url=unreachable),
        recognizer=replace(BUFFALO_L.recognizer, url=unreachable),
    )
    with pytest.raises(SourceUnreachable) as caught:
        fetch_pack(PACK, None, "url", tmp_path, progress=False, packs={PACK: pack}, addons={})
    assert str(caught.value) == (
        f"cannot reach 127.0.0.1:{closed_port}: are you offline? Download the files elsewhere"
        " and use `facegate models import DIR`"
    )
    assert installed(tmp_path) == []


def test_offline_hub_source_fails_fast(tmp_path: Path, closed_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(
        SourceUnreachable, match=f"cannot reach 127.0.0.1:{closed_port}: are you offline"
    ):
        fetch_pack(
            PACK,
            None,
            "hf",
            tmp_path,
            progress=False,
            hf_endpoint=f"http://127.0.0.1:{closed_port}",
            addons={},
        )
    # huggingface_hub alone retries a refused connection with backoff for ~25 s.
    assert time.monotonic() - started < 10


def test_missing_file_at_url(server: FakeServer, tmp_path: Path) -> None:
    cat = publish(server)
    del server.files["/files/inswapper_128.onnx"]
    with pytest.raises(MissingFile, match="404"):
        run_fetch(cat, "url", tmp_path)
    assert installed(tmp_path) == []


def test_missing_file_on_hub(server: FakeServer, tmp_path: Path) -> None:
    cat = publish(server)
    del server.files[f"/{HUB_REPO}/resolve/{REVISION}/inswapper_128.onnx"]
    with pytest.raises(MissingFile, match=re.escape("inswapper_128.onnx")):
        run_fetch(cat, "hf", tmp_path, hf_endpoint=server.base)


def test_missing_zip_member(server: FakeServer, tmp_path: Path) -> None:
    cat = publish(server)
    pack = cat.packs[PACK]
    cat.packs[PACK] = replace(pack, detector=replace(pack.detector, filename="det_2g.onnx"))
    with pytest.raises(MissingFile, match=re.escape("det_2g.onnx")):
        run_fetch(cat, "url", tmp_path)


def write_models(directory: Path, cat: Catalogue) -> None:
    (directory / PACK).mkdir(parents=True)
    for name in ("det_10g.onnx", "w600k_r50.onnx"):
        (directory / PACK / name).write_bytes(cat.blobs[name])
    (directory / "inswapper_128.onnx").write_bytes(cat.blobs["inswapper_128.onnx"])


def test_find_pack_files_looks_in_dir_and_pack_subdir(server: FakeServer, tmp_path: Path) -> None:
    cat = publish(server)
    write_models(tmp_path, cat)
    found = find_pack_files(
        tmp_path, PACK, SWAPPER, packs=cat.packs, swappers=cat.swappers, addons=cat.addons
    )
    assert found == {
        "detector": tmp_path / PACK / "det_10g.onnx",
        "recognizer": tmp_path / PACK / "w600k_r50.onnx",
        "swapper": tmp_path / "inswapper_128.onnx",
    }


def test_find_pack_files_names_what_is_missing(server: FakeServer, tmp_path: Path) -> None:
    cat = publish(server)
    write_models(tmp_path, cat)
    (tmp_path / "inswapper_128.onnx").unlink()
    with pytest.raises(MissingFile, match=re.escape("inswapper_128.onnx")):
        find_pack_files(
            tmp_path, PACK, SWAPPER, packs=cat.packs, swappers=cat.swappers, addons=cat.addons
        )
    # Without a swapper the rest is enough.
    assert set(
        find_pack_files(
            tmp_path, PACK, None, packs=cat.packs, swappers=cat.swappers, addons=cat.addons
        )
    ) == {
        "detector",
        "recognizer",
    }


def test_find_pack_files_verifies_unless_told_not_to(server: FakeServer, tmp_path: Path) -> None:
    cat = publish(server)
    write_models(tmp_path, cat)
    (tmp_path / PACK / "det_10g.onnx").write_bytes(b"re-exported")
    with pytest.raises(ChecksumMismatch, match=re.escape("det_10g.onnx")):
        find_pack_files(
            tmp_path, PACK, SWAPPER, packs=cat.packs, swappers=cat.swappers, addons=cat.addons
        )
    found = find_pack_files(
        tmp_path, PACK, SWAPPER, verify=False, packs=cat.packs, swappers=cat.swappers, addons={}
    )
    assert found["detector"] == tmp_path / PACK / "det_10g.onnx"


def test_verify_sha256(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(b"model")
    verify_sha256(path, sha256(b"model").upper())
    with pytest.raises(ChecksumMismatch, match=sha256(b"model")):
        verify_sha256(path, sha256(b"other"))


def test_bad_arguments_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown source"):
        fetch_pack(PACK, None, "ftp", tmp_path)
    with pytest.raises(ValueError, match="unknown pack"):
        fetch_pack("buffalo_xl", None, "url", tmp_path)
    with pytest.raises(ValueError, match=re.escape("the 'url' source only")):
        fetch_pack(PACK, None, "hf", tmp_path, url_overrides={"detector": "https://x/y.onnx"})
    with pytest.raises(ValueError, match="unknown roles"):
        fetch_pack(PACK, None, "url", tmp_path, url_overrides={"embedder": "https://x/y.onnx"})


def test_production_catalogue_is_pinned() -> None:
    files = [f for p in PACKS.values() for f in (p.detector, p.recognizer)] + list(
        SWAPPERS.values()
    )
    optional = [f for p in PACKS.values() for f in p.optional_files()]
    for f in [*files, *optional, *ADDONS.values()]:
        assert re.fullmatch(r"[0-9a-f]{64}", f.sha256), f.filename
        if f.hf is not None:
            assert re.fullmatch(r"[0-9a-f]{40}", f.hf.revision), f.filename
            assert f.hf.path_in_repo.rsplit("/", 1)[-1] == f.filename
        assert f.url.url.startswith("https://")
        assert f.size_bytes is not None and f.size_bytes > 0
    assert len({f.sha256 for f in files}) == len(files)


def test_every_pack_has_genderage_from_its_own_zip_and_every_fetch_the_liveness_addon() -> None:
    # buffalo_l.zip and buffalo_s.zip both ship genderage.onnx (with 1k3d68 and 2d106det).
    for pack in PACKS.values():
        genderage, detector = pack.genderage, pack.detector
        assert genderage is not None and genderage.hf is not None and detector.hf is not None
        assert genderage.url == detector.url  # the same zip
        assert genderage.url.url.endswith(f"/{pack.name}.zip")
        assert (genderage.hf.repo_id, genderage.hf.revision) == (
            detector.hf.repo_id,
            detector.hf.revision,
        )
        folder = detector.hf.path_in_repo.removesuffix(detector.filename)
        assert genderage.hf.path_in_repo == f"{folder}genderage.onnx"
        roles = list(select_files(pack.name, "inswapper_128"))
        assert roles == [
            "detector",
            "recognizer",
            "genderage",
            "landmark_2d_106",
            "landmark_3d_68",
            "swapper",
            "liveness",
        ]
    # One attribute model in both packs: the same pin.
    assert BUFFALO_S.genderage is not None and BUFFALO_L.genderage is not None
    assert BUFFALO_S.genderage.sha256 == BUFFALO_L.genderage.sha256
    # The liveness addon: no hub mirror, so both sources use its release URL.
    assert dict(ADDONS) == {"liveness": LIVENESS_ADDON}
    assert LIVENESS_ADDON.hf is None


def test_the_liveness_pin_is_insightface_s_own() -> None:
    # insightface 2.1 (the fidelity oracle, installed for the tests) pins the same file.
    from insightface.addons.catalog import ADDON_CATALOG

    upstream = ADDON_CATALOG["liveness"]
    assert (upstream.filename, upstream.sha256, upstream.size_bytes, upstream.url) == (
        LIVENESS_ADDON.filename,
        LIVENESS_ADDON.sha256,
        LIVENESS_ADDON.size_bytes,
        LIVENESS_ADDON.url.url,
    )


def test_pinned_files_name_every_file_that_may_fill_a_role() -> None:
    assert {f.filename for f in pinned_files("detector")} == {"det_10g.onnx", "det_500m.onnx"}
    assert BUFFALO_L.genderage is not None
    assert {f.sha256 for f in pinned_files("genderage")} == {BUFFALO_L.genderage.sha256}
    assert pinned_files("liveness") == [LIVENESS_ADDON]
    assert pinned_files("swapper") == [INSWAPPER_128]


def test_import_takes_the_liveness_addon_when_present_and_checks_its_pin(
    server: FakeServer, tmp_path: Path
) -> None:
    cat = publish(server)
    write_models(tmp_path, cat)
    (tmp_path / "liveness.onnx").write_bytes(b"not the addon")

    found = find_pack_files(
        tmp_path, PACK, SWAPPER, packs=cat.packs, swappers=cat.swappers, verify=False
    )
    assert found["liveness"] == tmp_path / "liveness.onnx"
    # genderage.onnx is optional: its absence is not an error.
    assert "genderage" not in found
    # An optional file that fails its pin is left out (with a warning); the rest imports.
    found = find_pack_files(
        tmp_path, PACK, SWAPPER, packs=cat.packs, swappers=cat.swappers, addons=cat.addons
    )
    assert set(found) == {"detector", "recognizer", "swapper"}
    (tmp_path / "liveness.onnx").write_bytes(b"the addon")
    addons = {"liveness": replace(LIVENESS_ADDON, sha256=sha256(b"the addon"))}
    found = find_pack_files(
        tmp_path, PACK, SWAPPER, packs=cat.packs, swappers=cat.swappers, addons=addons
    )
    assert found["liveness"] == tmp_path / "liveness.onnx"


def _with_genderage(cat: Catalogue, server: FakeServer, pinned: bytes) -> None:
    """Give the catalogue's pack a genderage file pinned to `pinned` (the zip holds others)."""
    pack = cat.packs[PACK]
    zip_url = pack.detector.url.url
    cat.packs[PACK] = replace(
        pack, genderage=_fake(BUFFALO_L.genderage, pinned, server.base, zip_url)
    )


@pytest.mark.parametrize("source", ["url", "hf"])
def test_optional_genderage_that_fails_installs_the_rest(
    server: FakeServer, tmp_path: Path, source: str
) -> None:
    cat = publish(server)
    # The zip's genderage.onnx has other bytes than the pin; the hub does not serve it.
    _with_genderage(cat, server, b"other bytes")
    result = run_fetch(cat, source, tmp_path, hf_endpoint=server.base)
    assert "genderage" not in result
    assert_installed(result, cat, tmp_path)
    assert not (tmp_path / "genderage.onnx").exists()


def test_genderage_with_its_pin_is_installed_from_the_zip(
    server: FakeServer, tmp_path: Path
) -> None:
    cat = publish(server)
    with zipfile.ZipFile(io.BytesIO(server.files[f"/files/{PACK}.zip"])) as zf:
        member = next(n for n in zf.namelist() if n.endswith("genderage.onnx"))
        data = zf.read(member)
    _with_genderage(cat, server, data)
    result = run_fetch(cat, "url", tmp_path)
    assert result["genderage"].read_bytes() == data
    assert server.gets[f"/files/{PACK}.zip"] == 1


def _publish_liveness(server: FakeServer, cat: Catalogue, data: bytes | None) -> ModelFile:
    """Pin a liveness addon at the fake server's /addons/liveness.onnx (served unless None)."""
    pinned = data or b"the pinned addon"
    addon = replace(
        LIVENESS_ADDON,
        sha256=sha256(pinned),
        size_bytes=len(pinned),
        url=UrlSource(f"{server.base}/addons/liveness.onnx"),
    )
    if data is not None:
        server.files["/addons/liveness.onnx"] = data
    cat.addons["liveness"] = addon
    return addon


@pytest.mark.parametrize("source", ["url", "hf"])
def test_fetch_downloads_the_liveness_addon_from_its_url_with_either_source(
    server: FakeServer, tmp_path: Path, source: str
) -> None:
    cat = publish(server)
    data = os.urandom(5000)
    _publish_liveness(server, cat, data)
    result = run_fetch(cat, source, tmp_path, hf_endpoint=server.base if source == "hf" else None)
    assert result["liveness"] == tmp_path / "liveness.onnx"
    assert result["liveness"].read_bytes() == data
    # No hub mirror: even the hub source gets it from the pinned URL, once.
    assert server.gets["/addons/liveness.onnx"] == 1
    assert not any("liveness" in path for _, path, _ in server.requests if "/resolve/" in path)


@pytest.mark.parametrize("served", [None, b"other bytes"], ids=["missing", "wrong-digest"])
def test_a_liveness_addon_that_fails_is_skipped_with_how_to_add_it(
    server: FakeServer, tmp_path: Path, served: bytes | None, caplog: pytest.LogCaptureFixture
) -> None:
    cat = publish(server)
    addon = _publish_liveness(server, cat, None)
    if served is not None:
        server.files["/addons/liveness.onnx"] = served
    result = run_fetch(cat, "url", tmp_path)
    assert "liveness" not in result
    assert_installed(result, cat, tmp_path)
    warning = next(r.getMessage() for r in caplog.records if "liveness.onnx" in r.getMessage())
    assert addon.url.url in warning
    assert "facegate models install liveness FILE" in warning
