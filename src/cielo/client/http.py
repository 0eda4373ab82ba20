"""A small typed client for Cielo's own API (used by the CLI and by tests).

It speaks the same wire protocols any Azure client does: OAuth forms to the token service, JSON
to the Graph-compatible directory and to the resource manager.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported by CieloClient: `cielo` commands that never make a client never pay for httpx
    import httpx


class ApiError(Exception):
    """An error answer: `code` is the OAuth `error` or the ARM/Graph `error.code`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _error(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        return ApiError(response.status_code, str(response.status_code), response.text[:500])
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return ApiError(response.status_code, str(body["error"].get("code")), str(body["error"].get("message")))
    if isinstance(body, dict) and "error" in body:
        description = str(body.get("error_description", "")).split("\r\n")[0]
        return ApiError(response.status_code, str(body["error"]), description or str(body["error"]))
    return ApiError(response.status_code, str(response.status_code), response.text[:500])


def ca_bundle_choice(ca_bundle: str | None = None) -> tuple[str | bool, str]:
    """The CA bundle to trust and where that choice came from, first found of:

    1. `ca_bundle` (`cielo cloud set --ca-bundle`);
    2. CIELO_CA_BUNDLE;
    3. REQUESTS_CA_BUNDLE, then SSL_CERT_FILE (what `cielo env` exports, and what az and curl read);
    4. the bundle in the data directory (CIELO_DATA_DIR, default ~/.local/share/cielo) of a server on this machine;
    5. the system's CAs.

    The environment comes before the data directory, so that a shell set up for one Cielo (`eval "$(cielo env
    --data-dir …)"`) is not overruled by another Cielo's data on the same machine. A file that is named but
    missing is skipped; `cielo cloud show` says which bundle is used and why."""
    named = [("--ca-bundle", ca_bundle)] + [(name, os.environ.get(name)) for name in
                                            ("CIELO_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")]
    for source, candidate in named:
        if candidate and Path(candidate).exists():
            return candidate, source
    data_dir = os.environ.get("CIELO_DATA_DIR")
    local = (Path(data_dir) if data_dir else Path.home() / ".local" / "share" / "cielo") / "tls" / "bundle.pem"
    if local.exists():
        return str(local), "data directory"
    return True, "system"


def default_verify(ca_bundle: str | None = None) -> str | bool:
    return ca_bundle_choice(ca_bundle)[0]


_transport: contextvars.ContextVar[httpx.BaseTransport | None] = contextvars.ContextVar(
    "cielo_client_transport", default=None)


@contextlib.contextmanager
def use_transport(transport: httpx.BaseTransport) -> Iterator[None]:
    """Send the requests of every `CieloClient` made inside this block (that names no transport of its
    own) through `transport`: a host process that embeds the CLI can route it, as httpx lets any
    caller, to an app in the same process or through a proxy of its own. Without it, clients connect
    over the network as usual."""
    token = _transport.set(transport)
    try:
        yield
    finally:
        _transport.reset(token)


class CieloClient:
    def __init__(self, endpoint: str, verify: str | bool = True, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        import httpx

        self.endpoint = endpoint.rstrip("/")
        self._http = httpx.Client(verify=verify, timeout=timeout, follow_redirects=False,
                                  transport=transport or _transport.get())

    def close(self) -> None:
        self._http.close()

    # ----------------------------------------------------------------- token service
    def token(self, tenant: str, form: dict[str, str], *, version: int = 2) -> dict[str, Any]:
        path = f"/{tenant}/oauth2/v2.0/token" if version == 2 else f"/{tenant}/oauth2/token"
        response = self._http.post(self.endpoint + path, data=form)
        if response.status_code != 200:
            raise _error(response)
        body: dict[str, Any] = response.json()
        return body

    def device_code(self, tenant: str, client_id: str, scope: str) -> dict[str, Any]:
        response = self._http.post(
            f"{self.endpoint}/{tenant}/oauth2/v2.0/devicecode", data={"client_id": client_id, "scope": scope}
        )
        if response.status_code != 200:
            raise _error(response)
        body: dict[str, Any] = response.json()
        return body

    def openid_configuration(self, tenant: str) -> dict[str, Any]:
        response = self._http.get(f"{self.endpoint}/{tenant}/v2.0/.well-known/openid-configuration")
        if response.status_code != 200:
            raise _error(response)
        body: dict[str, Any] = response.json()
        return body

    # ----------------------------------------------------------------- JSON APIs
    def request(self, method: str, path: str, token: str, body: Any = None,
                params: dict[str, str] | None = None) -> Any:
        response = self._http.request(
            method, self.endpoint + path, json=body, params=params,
            headers={"Authorization": f"Bearer {token}"},
        )
        if response.status_code >= 400:
            raise _error(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def get_url(self, url: str) -> httpx.Response:
        return self._http.get(url)

    def post_form(self, url: str, form: dict[str, str]) -> httpx.Response:
        return self._http.post(url, data=form)
