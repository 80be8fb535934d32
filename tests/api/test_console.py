"""The console's static routes and the offline docs pages, without a browser or Triton."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from gateway.api.console import CONSOLE_DIR
from gateway.app import create_app
from gateway.config import Settings


@pytest.fixture(scope="module")
def http() -> Iterator[TestClient]:
    # No `with`: the lifespan (the Triton client) does not run; static routes need none of it.
    app = create_app(Settings(api_keys="user:unit-user-key-0123456789"))
    yield TestClient(app, follow_redirects=False)


def _csp(response: object) -> dict[str, str]:
    header = response.headers["content-security-policy"]  # type: ignore[attr-defined]
    return {
        part.split()[0]: " ".join(part.split()[1:])
        for part in (p.strip() for p in header.split(";"))
        if part
    }


def test_root_and_bare_path_redirect_to_the_console(http: TestClient) -> None:
    for path in ("/", "/console"):
        response = http.get(path)
        assert response.status_code in (302, 307)
        assert response.headers["location"] == "/console/"


def test_console_needs_no_key_and_forbids_inline_script(http: TestClient) -> None:
    response = http.get("/console/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    csp = _csp(response)
    assert csp["default-src"] == "'self'"
    assert csp["script-src"] == "'self'"
    assert "unsafe" not in response.headers["content-security-policy"]
    assert "<script>" not in response.text and " style=" not in response.text


def test_every_packaged_file_is_served_with_its_type_and_no_external_url(
    http: TestClient,
) -> None:
    files = [p for p in CONSOLE_DIR.rglob("*") if p.is_file()]
    assert any(p.suffix == ".js" for p in files) and any(p.suffix == ".css" for p in files)
    for path in files:
        relative = path.relative_to(CONSOLE_DIR).as_posix()
        response = http.get(f"/console/{relative}")
        assert response.status_code == 200, relative
        if path.suffix == ".js":
            # ES modules load only with a JavaScript MIME type.
            assert response.headers["content-type"].startswith("text/javascript")
        assert response.headers["x-content-type-options"] == "nosniff"
        # Offline: nothing the console ships points at another origin (an SVG namespace
        # is a name, not a request).
        text = response.text.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert not re.search(r"https?://", text), relative


def test_every_module_import_resolves_to_a_packaged_file() -> None:
    for module in CONSOLE_DIR.rglob("*.js"):
        for target in re.findall(r'^import .* from "(\.[^"]+)";', module.read_text(), re.M):
            assert (module.parent / target).resolve().is_file(), f"{module.name}: {target}"


@pytest.mark.parametrize(
    "path", ["/console/../app.py", "/console/%2e%2e/app.py", "/console/nope.js", "/console/x.py"]
)
def test_no_file_outside_the_console_or_of_unknown_type(http: TestClient, path: str) -> None:
    response = http.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_docs_pages_load_only_local_assets(http: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        response = http.get(page)
        assert response.status_code == 200
        sources = re.findall(r'(?:src|href)="([^"]+)"', response.text)
        assert sources and all(s.startswith("/") for s in sources), sources
        for source in sources:
            assert http.get(source).status_code == 200, source
        assert "<script>" not in response.text
        assert _csp(response)["script-src"] == "'self'"


def test_unknown_docs_asset_is_404(http: TestClient) -> None:
    assert http.get("/docs/assets/evil.js").status_code == 404


def test_every_console_file_is_package_data() -> None:
    # A file the globs miss is absent from the wheel (and the image): the console breaks
    # there while it works from a checkout.
    package = CONSOLE_DIR.parent
    # tomllib is 3.11+; the one line is enough: gateway = ["py.typed", "console/*", ...]
    pyproject = (package.parent / "pyproject.toml").read_text()
    line = re.search(r"^gateway = \[(.*)\]$", pyproject, re.M)
    assert line is not None
    globs = re.findall(r'"([^"]+)"', line.group(1))
    shipped = {p for pattern in globs for p in package.glob(pattern) if p.is_file()}
    assert {p for p in CONSOLE_DIR.rglob("*") if p.is_file()} <= shipped
