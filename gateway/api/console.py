"""The web console (/console, static ES modules in gateway/console) and offline API docs.

Everything here is served from the installed package: the console's own files, and the
Swagger UI and ReDoc assets that fastapi-offline ships, so /console, /docs and /redoc work on
a cluster with no route to a CDN. The static files need no API key; the console sends the key
the user pastes with each API call it makes.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from gateway.errors import NotFound

CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
DOCS_ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"

# No inline script or style anywhere in the console; images come from canvas (data:) and
# from the swap result (blob:), camera frames stay in the page (mediastream).
CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI and ReDoc set style attributes and inject <style> elements (styled-components)
# and ReDoc searches in a blob: worker; their scripts still come only from this origin.
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; worker-src 'self' blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
_DOCS_ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")

router = APIRouter(include_in_schema=False)


def _headers(csp: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        # The files change with the installed version; revalidate rather than serve stale.
        "Cache-Control": "no-cache",
    }


def _packaged_file(folder: Path, relative: str, csp: str) -> FileResponse:
    """A file under `folder` (no escaping it, known types only); NotFound otherwise."""
    path = (folder / relative).resolve()
    media_type = _TYPES.get(path.suffix)
    if media_type is None or not path.is_relative_to(folder) or not path.is_file():
        raise NotFound(f"no such file {relative!r}: the console starts at /console/")
    return FileResponse(path, media_type=media_type, headers=_headers(csp))


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/console/")


@router.get("/console")
async def console_bare() -> RedirectResponse:
    return RedirectResponse("/console/")


@router.get("/console/")
async def console_index() -> FileResponse:
    return _packaged_file(CONSOLE_DIR, "index.html", CONSOLE_CSP)


@router.get("/console/{relative:path}")
async def console_file(relative: str) -> FileResponse:
    return _packaged_file(CONSOLE_DIR, relative, CONSOLE_CSP)


@router.get("/docs/assets/{name}")
async def docs_asset(name: str) -> FileResponse:
    if name not in _DOCS_ASSETS:
        raise NotFound(f"no docs asset {name!r}: the API docs are at /docs and /redoc")
    return _packaged_file(DOCS_ASSETS_DIR, name, DOCS_CSP)


def _docs_page(title: str, head: str, body: str) -> HTMLResponse:
    html = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="/docs/assets/favicon.png">{head}</head>'
        f"<body>{body}</body></html>\n"
    )
    return HTMLResponse(html, headers=_headers(DOCS_CSP))


@router.get("/docs")
async def swagger_ui() -> Response:
    """Swagger UI from packaged assets; its start-up script is a file (no inline script)."""
    return _docs_page(
        "facegate API - Swagger UI",
        '<link rel="stylesheet" href="/docs/assets/swagger-ui.css">',
        '<div id="swagger-ui"></div><script src="/docs/assets/swagger-ui-bundle.js"></script>'
        '<script src="/console/docs/swagger-init.js"></script>',
    )


@router.get("/redoc")
async def redoc() -> Response:
    """ReDoc from packaged assets, with the system font (no web font download)."""
    return _docs_page(
        "facegate API - ReDoc",
        "",
        '<div id="redoc"></div><script src="/docs/assets/redoc.standalone.js"></script>'
        '<script src="/console/docs/redoc-init.js"></script>',
    )
