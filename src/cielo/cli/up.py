"""`cielo up`, `cielo env` and `cielo keys`: running the server and managing its data directory."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cielo.cli.common import CliError, global_options

if TYPE_CHECKING:
    from cielo.settings import Settings

_DATA_DIR_HELP = "Directory for the database, CA, certificates and signing keys (env CIELO_DATA_DIR)."


def _settings(data_dir: Path | None, **overrides: Any) -> Settings:
    from cielo.settings import Settings  # pydantic: imported only by the commands that need it

    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    return Settings(**values)


def _recorded_base_url(settings: Settings) -> str:
    """The base URL the last `cielo up` on this data directory served (written at start)."""
    try:
        recorded = json.loads((settings.data_dir / "server.json").read_text())
        return str(recorded["base_url"])
    except (OSError, ValueError, KeyError, TypeError):
        return settings.base_url


def env_lines(settings: Settings, base_url: str | None = None) -> list[str]:
    bundle = settings.tls_dir / "bundle.pem"
    base = base_url or settings.base_url
    return [
        f"export REQUESTS_CA_BUNDLE={bundle}",
        f"export SSL_CERT_FILE={bundle}",
        f"export CURL_CA_BUNDLE={bundle}",
        f"export AZURE_AUTHORITY_HOST={base}",
        f"export CIELO_ENDPOINT={base}",
    ]


@click.command("up")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="CIELO_DATA_DIR", default=None,
              help=_DATA_DIR_HELP)
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="HTTPS port (default 8443).")
@click.option("--listen-443", is_flag=True, default=None,
              help="Also listen on port 443: MSAL drops the port on its user-realm call (ROPC).")
@click.option("--tls-name", "tls_names", multiple=True, help="Extra DNS name or IP for the certificate.")
@click.option("--public-url", default=None, help="Base URL clients use; the token issuer (default https://HOST:PORT).")
@click.option("--admin-user", envvar="CIELO_ADMIN_USER", default=None,
              help="First start only: the administrator's user name (env CIELO_ADMIN_USER).")
@click.option("--admin-password", envvar="CIELO_ADMIN_PASSWORD", default=None,
              help="First start only: the administrator's password (env CIELO_ADMIN_PASSWORD).")
@click.option("--workers", type=int, default=None, help="Worker processes (default 1).")
@click.option("--gguf", "gguf", multiple=True, help="NAME=PATH: a local GGUF chat model deployments may name.")
@click.option("--upstream", "upstreams", multiple=True,
              help="NAME=URL[,model=M][,api-key-env=VAR][,embeddings]: an OpenAI-compatible engine (vLLM, "
                   "llama.cpp server, Ollama, ...) deployments may name.")
@click.option("--log-level", default=None, type=click.Choice(["debug", "info", "warning", "error"]))
def up(data_dir: Path | None, host: str | None, port: int | None, listen_443: bool | None,
       tls_names: tuple[str, ...], public_url: str | None, admin_user: str | None,
       admin_password: str | None, workers: int | None, gguf: tuple[str, ...], upstreams: tuple[str, ...],
       log_level: str | None) -> None:
    """Set up (first start) and run Cielo: HTTPS token service and APIs on one port."""
    from cielo.api.app import build_services
    from cielo.api.server import bind, run
    from cielo.bootstrap import DEFAULT_ACCOUNT, DEFAULT_DEPLOYMENT, DEFAULT_RESOURCE_GROUP, bootstrap
    from cielo.identity.pki import ensure_tls

    settings = _settings(data_dir, host=host, port=port, listen_443=listen_443, public_url=public_url,
                         admin_user=admin_user, admin_password=admin_password, workers=workers,
                         log_level=log_level, tls_names=list(tls_names) or None, gguf=list(gguf) or None,
                         upstreams=list(upstreams) or None)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.data_dir, 0o700)
    tls = ensure_tls(settings.tls_dir, settings.tls_names)
    try:
        reuse_port = settings.workers > 1
        sockets = [bind(settings.host, settings.port, reuse_port=reuse_port)]
        if settings.listen_443:
            sockets.append(bind(settings.host, 443, reuse_port=reuse_port))
    except OSError as exc:
        raise CliError(f"cannot listen on {settings.host}: {exc.strerror}") from exc
    services = build_services(settings)
    result = bootstrap(services, settings.admin_user, settings.admin_password)
    base = settings.base_url
    (settings.data_dir / "server.json").write_text(json.dumps({"base_url": base, "pid": os.getpid()}))
    out = sys.stdout
    out.write(f"Cielo is running at {base}\n")
    out.write(f"  token service  {base}/{result.tenant.id}/oauth2/v2.0/token (authority host {base})\n")
    out.write(f"  discovery      {base}/{result.tenant.id}/v2.0/.well-known/openid-configuration\n")
    out.write(f"  resource mgr   {base}/subscriptions\n  directory      {base}/v1.0/users\n")
    if settings.listen_443:
        out.write(f"  also listening on https://{settings.host}:443\n")
    out.write(f"  tenant         {result.tenant.id} ({result.tenant.default_domain})\n")
    if result.subscription:
        out.write(f"  subscription   {result.subscription.id} ({result.subscription.display_name})\n")
    if result.account_endpoint:
        out.write(f"  openai account {DEFAULT_ACCOUNT} in {DEFAULT_RESOURCE_GROUP}, deployment {DEFAULT_DEPLOYMENT}: "
                  f"{result.account_endpoint}\n")
    out.write(f"  data dir       {settings.data_dir}\n")
    if result.created:
        out.write(f"\nCreated the administrator {result.admin_user}\n")
        if result.password_generated:
            out.write(f"  password: {result.admin_password}\n  (shown once; it is stored only as a hash)\n")
    out.write("\nMake clients trust Cielo's CA (system CAs + Cielo's CA in one bundle):\n")
    for line in env_lines(settings):
        out.write(f"  {line}\n")
    out.write(f"\nSign in:  cielo login --username {result.admin_user or 'USER'}  (or: cielo login)\n")
    out.write("Press Ctrl-C to stop.\n")
    out.flush()
    del services
    with contextlib.suppress(KeyboardInterrupt):
        run(settings, tls, sockets)
    out.write("Cielo stopped.\n")
    out.flush()
    # A generation running on llama.cpp's threads cannot be interrupted and would hold the interpreter's exit:
    # everything is stored already (SQLite commits per write), so leave now.
    os._exit(0)


@click.command("env")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="CIELO_DATA_DIR", default=None,
              help=_DATA_DIR_HELP)
@click.option("--port", type=int, default=None, help="The port Cielo listens on (default: as last started).")
@click.option("--host", default=None, help="The address Cielo listens on (default: as last started).")
def env(data_dir: Path | None, port: int | None, host: str | None) -> None:
    """Print the `export` lines that make clients trust Cielo's CA and find its authority."""
    settings = _settings(data_dir, port=port, host=host)
    if not (settings.tls_dir / "bundle.pem").exists():
        raise CliError(f"no Cielo data in {settings.data_dir}; run `cielo up` first")
    base = settings.base_url if (port or host) else _recorded_base_url(settings)
    for line in env_lines(settings, base):
        click.echo(line)


@click.group("keys")
def keys() -> None:
    """Manage the token signing keys in a data directory."""


@keys.command("rotate")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="CIELO_DATA_DIR", default=None,
              help=_DATA_DIR_HELP)
@global_options
def keys_rotate(data_dir: Path | None) -> dict[str, Any]:
    """Add a new signing key; older keys stay in JWKS until their last token has expired."""
    from cielo.identity.keys import KeyRing

    settings = _settings(data_dir)
    ring = KeyRing(settings.keys_dir, settings.token_lifetime_max_s)
    now = time.time()
    ring.prune(now)
    new = ring.rotate(now)
    return {"kid": new.kid, "keys": [{"kid": k.kid, "retireAt": k.retire_at} for k in ring.active_keys(now)]}


@keys.command("list")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="CIELO_DATA_DIR", default=None,
              help=_DATA_DIR_HELP)
@global_options
def keys_list(data_dir: Path | None) -> list[dict[str, Any]]:
    """List the signing keys and when retired ones leave the JWKS."""
    from cielo.identity.keys import KeyRing

    settings = _settings(data_dir)
    ring = KeyRing(settings.keys_dir, settings.token_lifetime_max_s)
    signing = ring.signing_key().kid if ring.active_keys(time.time()) else None
    return [{"kid": k.kid, "signing": k.kid == signing, "retireAt": k.retire_at}
            for k in ring.active_keys(time.time())]


def default_data_dir_text() -> str:
    from cielo.settings import default_data_dir

    return str(default_data_dir())
