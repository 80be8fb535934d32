"""StubWatch against a real HTTP server that breaks its answers off half-way."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gateway.ops.servers.stub_repair import StubWatch


class _TruncatingHandler(BaseHTTPRequestHandler):
    """Promises 100 bytes, sends 2, closes: the client reads http.client.IncompleteRead."""

    def do_POST(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        self.wfile.write(b"[{")
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def truncating_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TruncatingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_truncated_index_answer_finds_nothing_broken(truncating_url: str, tmp_path: Path) -> None:
    watch = StubWatch(truncating_url, "", ["detector"], session_id=0, repository=tmp_path)
    assert watch.broken_models() == []
    assert watch.repair() == ""


def test_a_truncated_reload_answer_is_reported_not_raised(
    truncating_url: str, tmp_path: Path
) -> None:
    watch = StubWatch(truncating_url, "", ["detector"], session_id=0, repository=tmp_path)
    watch.broken_models = lambda: ["detector"]  # type: ignore[method-assign]
    assert "reloading failed" in watch.repair()
