"""The portal's static files (one stylesheet, one script), from the package, cached for an hour."""

from __future__ import annotations

from pathlib import Path

from starlette.responses import FileResponse, Response

from cielo.web.portal.web import router, with_headers

_DIR = Path(__file__).parent.parent / "static"
_FILES = {"portal.css": "text/css", "portal.js": "text/javascript"}


@router.get("/portal/static/{name}", include_in_schema=False)
async def static_file(name: str) -> Response:
    if name not in _FILES:
        return with_headers(Response("Not found", status_code=404, media_type="text/plain"))
    response = FileResponse(_DIR / name, media_type=_FILES[name], headers={"Cache-Control": "public, max-age=3600"})
    return with_headers(response)
