"""`cielo up`, `cielo env` and `cielo keys`: running the server and managing its data directory."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import stat
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from cielo.cli.common import CliError, global_options
from cielo.cli.scrub import hide_option_values
from cielo.errors import CieloError, ConfigError, DataDirectoryError, PortInUse

if TYPE_CHECKING:
    from cielo.settings import Settings

_DATA_DIR_HELP = "Directory for the database, CA, certificates and signing keys (env CIELO_DATA_DIR)."
_DATABASE_URL_HELP = ("A database server shared by replicas instead of SQLite in the data directory, e.g. "
                      "postgresql+psycopg://cielo@db.example/cielo (env CIELO_DATABASE_URL; keep a password out of "
                      "the command line: use the environment or ~/.pgpass).")
DEFAULT_INTERCEPT_PORT = 8444
INTERCEPT_HOST = "127.0.0.1"  # loopback only: the proxy is for this machine's programs (docs/zero-code-change.md)


def _settings(data_dir: Path | None, **overrides: Any) -> Settings:
    from pydantic import ValidationError

    from cielo.settings import Settings  # pydantic: imported only by the commands that need it

    values = {k: v for k, v in overrides.items() if v is not None}
    if data_dir is not None:
        values["data_dir"] = data_dir
    try:
        return Settings(**values)
    except ValidationError as exc:  # one line naming the setting, not a traceback (a secret's value never shown)
        raise CliError(f"cannot start: {settings_problem(exc)}") from None


def settings_problem(exc: Any) -> str:
    """A pydantic ValidationError of Settings as `CIELO_NAME (--name) 'value': why`, one per problem."""
    from cielo.settings import Settings

    problems = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error.get("loc") else "?"
        field = Settings.model_fields.get(name)
        shown = f" {str(error.get('input'))[:60]!r}" if field is not None and field.repr else ""
        problems.append(f"the setting CIELO_{name.upper()} (--{name.replace('_', '-')}){shown} is invalid: "
                        f"{error.get('msg', '')}")
    return "; ".join(problems)


def _recorded_base_url(settings: Settings) -> str:
    """The base URL the last `cielo up` on this data directory served (written at start)."""
    try:
        recorded = json.loads((settings.data_dir / "server.json").read_text())
        return str(recorded["base_url"])
    except (OSError, ValueError, KeyError, TypeError):
        return settings.base_url


def env_pairs(settings: Settings, base_url: str | None = None,
              intercept_port: int | None = None, imds: bool = False, node: bool = False) -> list[tuple[str, str]]:
    """The variables a client's shell needs: trust Cielo's CA (system CAs + Cielo's in one bundle; Node.js adds
    NODE_EXTRA_CA_CERTS to its own store) and either find Cielo's authority (plain) or reach Cielo through the
    intercept proxy under Azure's own host names (intercept_port given; `imds`: the proxy also hands plain-HTTP
    requests for 169.254.169.254 to a managed-identity agent, so HTTP_PROXY names it too; `node`: Node.js's global
    fetch(), which ignores HTTPS_PROXY before Node 24, is made to honour it by a preloaded module)."""
    tls_dir = os.path.abspath(settings.tls_dir)  # the lines are for other shells, in other directories
    bundle = os.path.join(tls_dir, "bundle.pem")
    trust = [("REQUESTS_CA_BUNDLE", bundle), ("SSL_CERT_FILE", bundle), ("CURL_CA_BUNDLE", bundle),
             ("NODE_EXTRA_CA_CERTS", os.path.join(tls_dir, "ca.pem"))]
    if intercept_port is not None:
        proxy = f"http://{INTERCEPT_HOST}:{intercept_port}"
        # Loopback stays direct (Cielo's own URLs, local engines); every other host is refused by the proxy.
        plain = [("HTTP_PROXY", proxy), ("http_proxy", proxy)] if imds else []
        preload = [("NODE_OPTIONS", f"--import={NODE_FETCH_PROXY.as_uri()}")] if node else []
        return [("HTTPS_PROXY", proxy), ("https_proxy", proxy), *plain, ("NO_PROXY", "localhost,127.0.0.1,::1"),
                ("no_proxy", "localhost,127.0.0.1,::1"), *trust, *preload]
    base = base_url or settings.base_url
    return [*trust, ("AZURE_AUTHORITY_HOST", base), ("CIELO_ENDPOINT", base)]


# Makes Node's global fetch() (the `openai` npm package's transport) honour HTTPS_PROXY; see the file's header.
NODE_FETCH_PROXY = Path(__file__).resolve().parent.parent / "intercept" / "data" / "node-fetch-proxy.mjs"


def format_env(pairs: list[tuple[str, str]], style: str = "sh") -> list[str]:
    def quoted(value: str) -> str:
        return value if all(c.isalnum() or c in "/._-:,+=@" for c in value) else "'" + value.replace("'", "'\\''") + "'"

    if style == "dotenv":
        return [f"{name}={value}" for name, value in pairs]
    if style == "powershell":
        # Windows variables ignore case: one line per name.
        return [f"$env:{name} = '{value.replace(chr(39), chr(39) * 2)}'" for name, value in pairs if not name.islower()]
    if style == "fish":
        return [f"set -gx {name} {quoted(value)}" for name, value in pairs]
    return [f"export {name}={quoted(value)}" for name, value in pairs]


def _recorded_intercept_port(settings: Settings) -> int | None:
    try:
        port = json.loads((settings.data_dir / "server.json").read_text()).get("intercept_port")
    except (OSError, ValueError, AttributeError):
        return None
    return port if isinstance(port, int) else None


def _recorded_intercept_imds(settings: Settings) -> bool:
    try:
        return bool(json.loads((settings.data_dir / "server.json").read_text()).get("intercept_imds"))
    except (OSError, ValueError, AttributeError):
        return False


def parse_imds_agent(value: str) -> tuple[str, int]:
    """`--intercept-imds HOST:PORT`: a managed-identity agent on loopback (the proxy connects nowhere else)."""
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise CliError(f"--intercept-imds wants HOST:PORT (the address of `cielo agent`), not {value!r}")
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise CliError(f"--intercept-imds must name an agent on loopback (127.0.0.1, ::1 or localhost), not {host}")
    return host, int(port)


def env_lines(settings: Settings, base_url: str | None = None) -> list[str]:
    return format_env(env_pairs(settings, base_url))


def _admin_password(value: str | None, file: Path | None, prompt: bool) -> str | None:
    """The administrator's password from exactly one of --admin-password (hidden from the process list at once),
    CIELO_ADMIN_PASSWORD, --admin-password-file / CIELO_ADMIN_PASSWORD_FILE; None to prompt or generate one."""
    ctx = click.get_current_context()
    on_command_line = ctx.get_parameter_source("admin_password") is click.ParameterSource.COMMANDLINE
    if value is not None and on_command_line:
        problem = hide_option_values("--admin-password")
        if problem:
            click.echo(f"WARNING: other local users can read --admin-password in the process list ({problem}); "
                       "prefer --admin-password-file or CIELO_ADMIN_PASSWORD.", err=True)
    # Not for the workers, nor for anything this process starts.
    os.environ.pop("CIELO_ADMIN_PASSWORD", None)
    file_from_env = ctx.get_parameter_source("admin_password_file") is click.ParameterSource.ENVIRONMENT
    given = [name for name, present in (
        ("--admin-password" if on_command_line else "CIELO_ADMIN_PASSWORD", value is not None),
        ("CIELO_ADMIN_PASSWORD_FILE" if file_from_env else "--admin-password-file", file is not None),
        ("--admin-password-prompt", prompt)) if present]
    if len(given) > 1:
        raise CliError(f"give the administrator's password one way, not {' and '.join(given)}")
    if prompt and not sys.stdin.isatty():
        raise CliError("--admin-password-prompt needs a terminal; use --admin-password-file or CIELO_ADMIN_PASSWORD")
    if value == "":
        raise CliError("the administrator's password is empty")
    if file is None:
        return value
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read the administrator's password from {file}: {exc}") from exc
    text = text.removesuffix("\n").removesuffix("\r") if text.endswith("\n") else text
    if not text:
        raise CliError(f"{file} holds no password")
    return text


def _make_private(data_dir: Path) -> None:
    """Directories 0700 and files 0600 (or narrower) throughout the data directory: what an earlier version or
    another tool made wider is tightened at each start. Symbolic links are neither changed nor followed."""
    for root, _dirs, files in os.walk(data_dir):
        _narrow(root, 0o700)
        for name in files:
            _narrow(os.path.join(root, name), 0o600)


def _narrow(path: str, allowed: int) -> None:
    with contextlib.suppress(FileNotFoundError):  # e.g. a temporary file replaced meanwhile
        info = os.lstat(path)
        mode = stat.S_IMODE(info.st_mode)
        if not stat.S_ISLNK(info.st_mode) and mode & ~allowed:
            os.chmod(path, mode & allowed)


def _recovery_hint(data_dir: Path) -> str:
    return (f"restore it from a backup, or run `cielo up --reset` to move {data_dir} aside (to "
            f"{data_dir.name}.bak-<timestamp>) and start over")


def _reset(data_dir: Path) -> None:
    """--reset: the old data directory is moved aside, never deleted."""
    from cielo.store.datadir import move_aside

    try:
        moved = move_aside(data_dir)
    except DataDirectoryError as exc:
        raise CliError(f"cannot reset: {exc}") from exc
    except OSError as exc:
        raise CliError(f"cannot reset: cannot move {data_dir} aside: {exc.strerror or exc}") from exc
    if moved is not None:
        click.echo(f"Moved the data directory {data_dir} aside to {moved}; starting over with a new one.", err=True)


def _open_data_dir(settings: Settings) -> None:
    """Check the database and bring its schema to the newest revision, before anything else starts and before
    the workers fork. A damaged or missing one is refused with a one-line error naming the file."""
    from cielo.core.sealing import Sealer
    from cielo.identity.keys import KeyRing, share_ca
    from cielo.identity.pki import PkiError
    from cielo.store.datadir import open_database
    from cielo.store.migrate import NEW

    try:
        # The key files first: a damaged one is refused before the database is upgraded (and backed up).
        if settings.database_url is None and settings.keys_dir.is_dir():
            KeyRing(settings.keys_dir, settings.token_lifetime_max_s).active_keys(0.0)
        if settings.database_url is None and (settings.data_dir / "sealing.key").exists():
            Sealer(settings.data_dir / "sealing.key")  # a missing one is refused below if secrets need it
        engine, upgraded = open_database(settings.data_dir, settings.db_path, settings.database_url)
    except DataDirectoryError as exc:
        if settings.database_url is not None:
            raise CliError(f"cannot start: {exc}") from exc
        raise CliError(f"cannot start: {exc}; {_recovery_hint(settings.data_dir)}") from exc
    where = engine.url.render_as_string(hide_password=True) if settings.database_url else settings.db_path
    try:
        share_ca(settings, engine, time.time())  # a shared database: its KEK checked, its CA in tls/
    except (ConfigError, DataDirectoryError, PkiError) as exc:
        raise CliError(f"cannot start: {exc}") from exc
    finally:
        engine.dispose()
    if upgraded is not None and upgraded.from_revision != NEW:
        kept = f"; the previous database is kept at {upgraded.backup}" if upgraded.backup else ""
        click.echo(f"Upgraded the database {where} from schema {upgraded.from_revision} to "
                   f"{upgraded.to_revision}{kept}", err=True)
        for note in upgraded.notes:
            click.echo(f"  upgrade: {note}", err=True)


def _ask_password(label: str = "Password for the new administrator") -> str:
    from cielo.identity.directory import _check_password as check_password

    def valid(answer: str) -> str:
        try:
            check_password(answer)
        except CieloError as exc:
            raise click.BadParameter(str(exc)) from exc  # click says why and asks again
        return answer

    return str(click.prompt(label, hide_input=True, confirmation_prompt=True,
                            err=True, value_proc=valid))


@click.command("up")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="CIELO_DATA_DIR", default=None,
              help=_DATA_DIR_HELP)
@click.option("--database-url", envvar="CIELO_DATABASE_URL", default=None, help=_DATABASE_URL_HELP)
@click.option("--key-encryption-key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              envvar="CIELO_KEY_ENCRYPTION_KEY_FILE", default=None,
              help="With --database-url: the key-encryption key that seals the signing keys, the sealing key and the "
                   "CA in the database (32 random bytes, base64; or env CIELO_KEY_ENCRYPTION_KEY).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="This server's certificate chain (PEM) instead of one issued from Cielo's CA (with --tls-key).")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The private key (PEM) of --tls-cert.")
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="HTTPS port (default 8443).")
@click.option("--listen-443", is_flag=True, default=None,
              help="Also listen on port 443: MSAL drops the port on its user-realm call (ROPC).")
@click.option("--tls-name", "tls_names", multiple=True, help="Extra DNS name or IP for the certificate.")
@click.option("--public-url", default=None, help="Base URL clients use; the token issuer (default https://HOST:PORT).")
@click.option("--admin-user", envvar="CIELO_ADMIN_USER", default=None,
              help="First start only: the administrator's user name (env CIELO_ADMIN_USER).")
@click.option("--admin-password", envvar="CIELO_ADMIN_PASSWORD", default=None,
              help="First start only: the administrator's password (env CIELO_ADMIN_PASSWORD). Given here, it is "
                   "visible to other local users until Cielo starts; prefer --admin-password-file or "
                   "CIELO_ADMIN_PASSWORD.")
@click.option("--admin-password-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              envvar="CIELO_ADMIN_PASSWORD_FILE", default=None,
              help="First start only: read the administrator's password from this file (one trailing newline "
                   "is dropped; env CIELO_ADMIN_PASSWORD_FILE).")
@click.option("--admin-password-prompt", is_flag=True, default=False,
              help="First start only: ask for the administrator's password on the terminal.")
@click.option("--workers", type=int, default=None, help="Worker processes (default 1).")
@click.option("--redis-url", envvar="CIELO_REDIS_URL", default=None,
              help="Redis shared by replicas (redis://HOST:6379/0): quota windows, sign-in lockout counts and the "
                   "change feed of every replica's caches (env CIELO_REDIS_URL; docs/deployment.md). Default: none.")
@click.option("--gguf", "gguf", multiple=True, help="NAME=PATH: a local GGUF chat model deployments may name.")
@click.option("--upstream", "upstreams", multiple=True,
              help="NAME=URL[,model=M][,api-key-env=VAR][,embeddings]: an OpenAI-compatible engine (vLLM, "
                   "llama.cpp server, Ollama, ...) deployments may name; a NAME given again makes a pool of them "
                   "(,priority=P,weight=W; docs/backend-pools.md).")
@click.option("--backends-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              envvar="CIELO_BACKENDS_FILE", default=None,
              help="A YAML file of backend pools: models served by several upstreams, with priorities, weights, "
                   "health checks and failover (env CIELO_BACKENDS_FILE; docs/backend-pools.md).")
@click.option("--log-level", default=None, type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--log-format", default=None, type=click.Choice(["plain", "json"]),
              help="Cielo's log lines as plain text or JSON lines (env CIELO_LOG_FORMAT; default plain).")
@click.option("--reset", is_flag=True, default=False,
              help="Start over: move the data directory aside to DATA_DIR.bak-<timestamp> (nothing is deleted) "
                   "and set up a new one.")
@click.option("--intercept", is_flag=True, default=False,
              help="Also serve an HTTPS proxy on 127.0.0.1 that answers for Azure's own hosts "
                   "(login.microsoftonline.com, management.azure.com, graph.microsoft.com, *.openai.azure.com, ...) "
                   "with Cielo and refuses every "
                   "other host; see `cielo env --intercept` and docs/zero-code-change.md.")
@click.option("--intercept-port", type=int, default=None,
              help=f"The intercept proxy's port on 127.0.0.1 (default {DEFAULT_INTERCEPT_PORT}; implies --intercept).")
@click.option("--intercept-imds", "intercept_imds", default=None, metavar="HOST:PORT",
              help="Hand plain-HTTP requests for IMDS (http://169.254.169.254/metadata/...) that reach the proxy to "
                   "the managed-identity agent (`cielo agent`) at HOST:PORT on loopback, so "
                   "ManagedIdentityCredential() with no settings works; `cielo env --intercept` then sets "
                   "HTTP_PROXY too (implies --intercept).")
def up(data_dir: Path | None, redis_url: str | None, host: str | None, port: int | None, listen_443: bool | None,
       tls_names: tuple[str, ...], public_url: str | None, admin_user: str | None,
       admin_password: str | None, admin_password_file: Path | None, admin_password_prompt: bool,
       workers: int | None, gguf: tuple[str, ...], upstreams: tuple[str, ...], backends_file: Path | None,
       log_level: str | None,
       reset: bool, intercept: bool, intercept_port: int | None, intercept_imds: str | None,
       database_url: str | None = None, key_encryption_key_file: Path | None = None, tls_cert: Path | None = None,
       tls_key: Path | None = None, log_format: str | None = None) -> None:
    """Set up (first start) and run Cielo: HTTPS token service and APIs on one port.

    Without a password (--admin-password-file, CIELO_ADMIN_PASSWORD, --admin-password-prompt) the first
    start generates the administrator's and prints it once."""
    admin_password = _admin_password(admin_password, admin_password_file, admin_password_prompt)
    from cielo.api.app import build_services
    from cielo.api.server import listen, run
    from cielo.bootstrap import DEFAULT_ACCOUNT, DEFAULT_DEPLOYMENT, DEFAULT_RESOURCE_GROUP, bootstrap
    from cielo.identity.pki import ensure_tls

    settings = _settings(data_dir, redis_url=redis_url,
                         host=host, port=port, listen_443=listen_443, public_url=public_url,
                         admin_user=admin_user, admin_password=admin_password, workers=workers,
                         log_level=log_level, tls_names=list(tls_names) or None, gguf=list(gguf) or None,
                         upstreams=list(upstreams) or None, backends_file=backends_file, database_url=database_url,
                         key_encryption_key_file=key_encryption_key_file, tls_cert=tls_cert, tls_key=tls_key,
                         log_format=log_format)
    if (tls_cert is None) != (tls_key is None):
        raise CliError("give --tls-cert and --tls-key together")
    if settings.redis_url:
        _check_redis(settings.redis_url)
    elif settings.database_url:
        click.echo("WARNING: --database-url without --redis-url: run one replica on this database (its workers share "
                   "this data directory's change markers); several replicas need --redis-url too, or a change made "
                   "through one (a role revoked) would not reach the others' caches (docs/deployment.md).", err=True)
    try:
        from cielo.api.app import build_catalogue

        build_catalogue(settings)  # a bad --upstream or backends file is refused before anything starts
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    try:
        # Refused when anything listens there already, an earlier server's orphaned workers included; checked
        # before anything touches the data directory (--reset, migrations), which may be that server's.
        reuse_port = settings.workers > 1
        sockets = [listen(settings.host, settings.port, reuse_port=reuse_port)]
        if settings.listen_443:
            sockets.append(listen(settings.host, 443, reuse_port=reuse_port))
    except PortInUse as exc:
        raise CliError(str(exc)) from exc
    except OSError as exc:
        raise CliError(f"cannot listen on {settings.host}: {exc.strerror}") from exc
    imds_agent = parse_imds_agent(intercept_imds) if intercept_imds is not None else None
    proxy_socket = _intercept_socket(intercept_port if intercept_port is not None else
                                     DEFAULT_INTERCEPT_PORT if intercept or imds_agent else None)
    if reset:
        _reset(settings.data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.data_dir, 0o700)
    _open_data_dir(settings)
    tls = ensure_tls(settings.tls_dir, settings.tls_names)
    if settings.tls_cert is not None and settings.tls_key is not None:  # this replica's own certificate
        tls = _own_certificate(tls, settings.tls_cert, settings.tls_key)
    try:
        services = build_services(settings)
    except DataDirectoryError as exc:  # a damaged signing key or sealing key
        raise CliError(f"cannot start: {exc}; {_recovery_hint(settings.data_dir)}") from exc
    try:
        result = bootstrap(services, settings.admin_user, settings.admin_password,
                           ask_password=_ask_password if admin_password_prompt else None)
    except CieloError as exc:
        raise CliError(f"cannot create the administrator: {exc}") from exc
    admin_given = bool(settings.admin_user or settings.admin_password or admin_password_prompt)
    base = settings.base_url
    recorded: dict[str, Any] = {"base_url": base, "pid": os.getpid()}
    if proxy_socket is not None:
        recorded["intercept_port"] = proxy_socket.getsockname()[1]
        if imds_agent is not None:
            recorded["intercept_imds"] = f"{imds_agent[0]}:{imds_agent[1]}"
    (settings.data_dir / "server.json").write_text(json.dumps(recorded))
    _make_private(settings.data_dir)
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
    if proxy_socket is not None:
        out.write(f"  intercept      http://{INTERCEPT_HOST}:{recorded['intercept_port']} (HTTPS proxy for Azure's "
                  "hosts; `cielo env --intercept` prints the variables)\n")
        if imds_agent is not None:
            out.write(f"  intercept imds http://169.254.169.254 -> the agent at {recorded['intercept_imds']}\n")
    if admin_given and not result.created:
        out.write("  (the administrator options apply at the first start only: this data directory has one)\n")
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
    # The password has served its purpose: the workers do not need it.
    settings = settings.model_copy(update={"admin_password": None})
    if proxy_socket is not None:
        _start_intercept(settings, tls.ca_cert, tls.ca_key, proxy_socket, imds_agent)
    from cielo.logging_setup import configure as configure_logging
    from cielo.logging_setup import flush_batched
    from cielo.observability.metrics import prepare_multiprocess

    configure_logging(settings.log_level, settings.log_format)  # the access log, model loading
    prepare_multiprocess(settings.data_dir)  # /metrics sums every worker's samples (docs/monitoring.md)
    with contextlib.suppress(KeyboardInterrupt):
        run(settings, tls, sockets)
    out.write("Cielo stopped.\n")
    out.flush()
    # A generation running on llama.cpp's threads cannot be interrupted and would hold the interpreter's exit:
    # everything is stored already (SQLite commits per write), so leave now, with the last log lines written.
    flush_batched()
    os._exit(0)


def _check_redis(url: str) -> None:
    """--redis-url must answer before anything starts: one line naming it (its password masked) otherwise."""
    import redis

    from cielo.shared.connection import connect, redacted

    try:
        client = connect(url)
    except ValueError as exc:  # not a Redis URL
        raise CliError(f"cannot start: --redis-url {redacted(url)} is not a Redis URL: {exc}") from None
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        reason = str(exc) or type(exc).__name__
        password = urlsplit(url).password
        if password and password in reason:
            reason = type(exc).__name__
        raise CliError(f"cannot start: cannot reach Redis at {redacted(url)} (--redis-url / CIELO_REDIS_URL): "
                       f"{reason}") from None
    finally:
        client.close()


def _own_certificate(tls: Any, cert: Path, key: Path) -> Any:
    """--tls-cert/--tls-key in place of the certificate issued from Cielo's CA, refused with one line when the
    files are not a certificate chain and its key."""
    import dataclasses
    import ssl

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise CliError(f"--tls-cert {cert} with --tls-key {key}: not a PEM certificate chain and its private key "
                       f"({exc})") from exc
    return dataclasses.replace(tls, server_cert=cert, server_key=key)


def _intercept_socket(port: int | None) -> Any:
    if port is None:
        return None
    from cielo.intercept.proxy import listen as listen_proxy

    try:
        return listen_proxy(INTERCEPT_HOST, port)
    except OSError as exc:
        raise CliError(f"cannot listen on {INTERCEPT_HOST}:{port} for --intercept: {exc.strerror}") from exc


def _start_intercept(settings: Settings, ca_cert: Path, ca_key: Path, sock: Any,
                     imds_agent: tuple[str, int] | None = None) -> None:
    """The proxy runs on its own event loop in a thread of this process; workers forked later do not run it."""
    from cielo.intercept.certs import HostCertificates
    from cielo.intercept.proxy import InterceptProxy, Upstream, start_in_thread

    loopback = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(settings.host, settings.host)
    start_in_thread(InterceptProxy(HostCertificates(ca_cert, ca_key), Upstream(loopback, settings.port, ca_cert),
                                   imds_agent), sock)


@click.command("env")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="CIELO_DATA_DIR", default=None,
              help=_DATA_DIR_HELP)
@click.option("--port", type=int, default=None, help="The port Cielo listens on (default: as last started).")
@click.option("--host", default=None, help="The address Cielo listens on (default: as last started).")
@click.option("--intercept", is_flag=True, default=False,
              help="The variables for intercept mode (`cielo up --intercept`): HTTPS_PROXY to Cielo's proxy, so code "
                   "that names Azure's hosts reaches Cielo unchanged.")
@click.option("--intercept-port", type=int, default=None,
              help="The intercept proxy's port (default: as last started, else "
                   f"{DEFAULT_INTERCEPT_PORT}; implies --intercept).")
@click.option("--node", is_flag=True, default=False,
              help="With --intercept: also NODE_OPTIONS=--import=<Cielo's module> so Node.js's global fetch() (the "
                   "`openai` npm package), which ignores HTTPS_PROXY before Node 24, goes through the proxy too.")
@click.option("--format", "style", type=click.Choice(["sh", "dotenv", "powershell", "fish"]), default="sh",
              show_default=True, help="The shell (or .env file) the lines are for.")
def env(data_dir: Path | None, port: int | None, host: str | None, intercept: bool, intercept_port: int | None,
        node: bool, style: str) -> None:
    """Print the `export` lines that make clients trust Cielo's CA and find its authority (or, with --intercept,
    reach Cielo through its proxy under Azure's own host names)."""
    settings = _settings(data_dir, port=port, host=host)
    if not (settings.tls_dir / "bundle.pem").exists():
        raise CliError(f"no Cielo data in {settings.data_dir}; run `cielo up` first")
    base = settings.base_url if (port or host) else _recorded_base_url(settings)
    if intercept or intercept_port is not None:
        intercept_port = intercept_port or _recorded_intercept_port(settings) or DEFAULT_INTERCEPT_PORT
    imds = intercept_port is not None and _recorded_intercept_imds(settings)
    if node and intercept_port is None:
        raise CliError("--node is for intercept mode: give --intercept too")
    for line in format_env(env_pairs(settings, base, intercept_port, imds, node), style):
        click.echo(line)
    if intercept_port is not None:
        click.echo("# cielo env: the proxy refuses every host but Azure's (403); add a host other programs in this "
                   "shell need to NO_PROXY, or unset HTTPS_PROXY to reach real Azure again.", err=True)
    # On stderr, so that `eval "$(cielo env)"` takes the exports only.
    chosen = "" if data_dir is not None else " (the default; give --data-dir or CIELO_DATA_DIR for another)"
    click.echo(f"# cielo env: the Cielo of the data directory {settings.data_dir}{chosen}, at {base}", err=True)
    answer = _server_identity(base, settings.tls_dir / "bundle.pem")
    if answer == "other":
        click.echo(f"WARNING: the server answering at {base} is not the one of {settings.data_dir}: its certificate "
                   "does not verify against this directory's CA, so these exports would not let clients trust it. Give "
                   "`cielo env --data-dir` that server's data directory.", err=True)
    elif answer == "none":
        click.echo(f"# cielo env: nothing answers at {base} now; start it with `cielo up` on this data directory.",
                   err=True)


def _server_identity(base: str, bundle: Path) -> str:
    """"same" when the server at `base` presents a certificate from this data directory's CA, "other" when a
    server answers there with another one (a second Cielo on the same port), "none" when nothing answers."""
    import socket
    import ssl
    from urllib.parse import urlsplit

    url = urlsplit(base)
    host, port = url.hostname or "127.0.0.1", url.port or 443
    try:
        context = ssl.create_default_context(cafile=str(bundle))
        with socket.create_connection((host, port), timeout=2) as sock, \
                context.wrap_socket(sock, server_hostname=host):
            return "same"
    except ssl.SSLCertVerificationError:
        return "other"
    except (OSError, ssl.SSLError):
        return "none"


@click.group("keys")
def keys() -> None:
    """Manage the token signing keys in a data directory.

    \b
    Examples:
      cielo keys list --data-dir ~/.local/share/cielo -o table
      cielo keys rotate --data-dir ~/.local/share/cielo"""


def _key_ring(data_dir: Path | None, database_url: str | None, kek_file: Path | None) -> Any:
    """The signing keys of a data directory, or of the database replicas share (`--database-url`, with its KEK)."""
    from cielo.identity.keys import KeyRing, shared_store

    settings = _settings(data_dir, database_url=database_url, key_encryption_key_file=kek_file)
    if settings.database_url is None:
        return KeyRing(settings.keys_dir, settings.token_lifetime_max_s)
    from cielo.store.datadir import open_server_database

    try:
        engine, _ = open_server_database(settings.database_url)
        return KeyRing(settings.keys_dir, settings.token_lifetime_max_s, shared_store(settings, engine, time.time()))
    except (ConfigError, DataDirectoryError) as exc:
        raise CliError(str(exc)) from exc


_KEYS_DATABASE_HELP = "The database replicas share (env CIELO_DATABASE_URL): its keys, not the data directory's."
_KEYS_KEK_HELP = "With --database-url: the key-encryption key (or env CIELO_KEY_ENCRYPTION_KEY)."


@keys.command("rotate")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="CIELO_DATA_DIR", default=None,
              help=_DATA_DIR_HELP)
@click.option("--database-url", envvar="CIELO_DATABASE_URL", default=None, help=_KEYS_DATABASE_HELP)
@click.option("--key-encryption-key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              envvar="CIELO_KEY_ENCRYPTION_KEY_FILE", default=None, help=_KEYS_KEK_HELP)
@global_options
def keys_rotate(data_dir: Path | None, database_url: str | None, key_encryption_key_file: Path | None
                ) -> dict[str, Any]:
    """Add a new signing key; older keys stay in JWKS until their last token has expired."""
    ring = _key_ring(data_dir, database_url, key_encryption_key_file)
    now = time.time()
    try:
        ring.prune(now)
        new = ring.rotate(now)
    except DataDirectoryError as exc:  # a damaged key file: named, no traceback
        raise CliError(str(exc)) from exc
    return {"kid": new.kid, "keys": [{"kid": k.kid, "retireAt": k.retire_at} for k in ring.active_keys(now)]}


@keys.command("rewrap")
@click.option("--database-url", envvar="CIELO_DATABASE_URL", required=True, help=_KEYS_DATABASE_HELP)
@click.option("--key-encryption-key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              envvar="CIELO_KEY_ENCRYPTION_KEY_FILE", default=None,
              help="The key-encryption key the keys are sealed with now (or env CIELO_KEY_ENCRYPTION_KEY).")
@click.option("--new-key-encryption-key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="The new key-encryption key (32 random bytes, base64).")
@global_options
def keys_rewrap(database_url: str, key_encryption_key_file: Path | None, new_key_encryption_key_file: Path
                ) -> dict[str, Any]:
    """Rotate the key-encryption key: seal every key in the shared database again under a new one, in one
    transaction. Then restart each replica with the new key (running ones keep their keys in memory).

    \b
    Examples:
      cielo keys rewrap --database-url postgresql+psycopg://cielo@db.example/cielo \\
        --key-encryption-key-file ./kek --new-key-encryption-key-file ./kek.new"""
    from cielo.core.sealing import KeyEncryptionKey
    from cielo.identity.keys import shared_store
    from cielo.store.datadir import open_server_database

    settings = _settings(None, database_url=database_url, key_encryption_key_file=key_encryption_key_file)
    try:
        new = KeyEncryptionKey.parse(new_key_encryption_key_file.read_text(encoding="ascii"),
                                     str(new_key_encryption_key_file))
        engine, _ = open_server_database(database_url)
        try:
            store = shared_store(settings, engine, time.time())
            assert store is not None
            rows = store.rewrap(new)
        finally:
            engine.dispose()
    except (ConfigError, DataDirectoryError, OSError, UnicodeDecodeError) as exc:
        raise CliError(str(exc)) from exc
    return {"database": engine.url.render_as_string(hide_password=True), "resealed": rows}


@keys.command("list")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="CIELO_DATA_DIR", default=None,
              help=_DATA_DIR_HELP)
@click.option("--database-url", envvar="CIELO_DATABASE_URL", default=None, help=_KEYS_DATABASE_HELP)
@click.option("--key-encryption-key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              envvar="CIELO_KEY_ENCRYPTION_KEY_FILE", default=None, help=_KEYS_KEK_HELP)
@global_options
def keys_list(data_dir: Path | None, database_url: str | None, key_encryption_key_file: Path | None
              ) -> list[dict[str, Any]]:
    """List the signing keys and when retired ones leave the JWKS."""
    ring = _key_ring(data_dir, database_url, key_encryption_key_file)
    try:
        signing = ring.signing_key().kid if ring.active_keys(time.time()) else None
    except DataDirectoryError as exc:  # a damaged key file: named, no traceback
        raise CliError(str(exc)) from exc
    return [{"kid": k.kid, "signing": k.kid == signing, "retireAt": k.retire_at}
            for k in ring.active_keys(time.time())]


@click.group("admin")
def admin() -> None:
    """Offline administration of a data directory (no server, no sign-in needed).

    \b
    Examples:
      cielo admin reset-password --data-dir ~/.local/share/cielo --user admin@cielo.local --password-prompt
      cielo admin reset-password --user admin@cielo.local --password-file ./new-password
      cielo admin reset-password --user admin@cielo.local --generate -o tsv --query password"""


@admin.command("reset-password")
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="CIELO_DATA_DIR", default=None,
              help=_DATA_DIR_HELP)
@click.option("--database-url", envvar="CIELO_DATABASE_URL", default=None, help=_DATABASE_URL_HELP)
@click.option("--user", "user", required=True, help="The user's principal name or object id.")
@click.option("--password-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Read the new password from this file (one trailing newline is dropped).")
@click.option("--password-prompt", is_flag=True, default=False, help="Ask for the new password on the terminal.")
@click.option("--generate", is_flag=True, default=False,
              help="Make a new random password and print it (the only time it is shown).")
@global_options
def reset_password(data_dir: Path | None, database_url: str | None, user: str, password_file: Path | None,
                   password_prompt: bool, generate: bool) -> dict[str, Any]:
    """Set a user's password directly in the data directory, e.g. the administrator's when it is lost.

    Works with the server stopped (a running one sees the change too). The password is stored argon2-hashed and
    the user's refresh tokens stop working. The new password is printed only with --generate."""
    from cielo.core.clock import SystemClock
    from cielo.core.ids import new_password
    from cielo.identity.directory import reset_password_offline

    given = [name for name, present in (("--password-file", password_file is not None),
                                        ("--password-prompt", password_prompt), ("--generate", generate)) if present]
    if len(given) != 1:
        raise CliError("usage error: give the new password one way: --password-file FILE | --password-prompt | "
                       "--generate")
    if password_prompt and not sys.stdin.isatty():
        raise CliError("--password-prompt needs a terminal; use --password-file")
    settings = _settings(data_dir, database_url=database_url)
    if settings.database_url is None and not settings.db_path.exists():
        raise CliError(f"no Cielo data in {settings.data_dir}; give --data-dir (or CIELO_DATA_DIR), or --database-url")
    if password_file is not None:
        try:
            text = password_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read the password from {password_file}: {exc}") from exc
        password = text.removesuffix("\n").removesuffix("\r") if text.endswith("\n") else text
    elif password_prompt:
        password = _ask_password(f"New password for {user}")
    else:
        password = new_password()
    try:
        changed = reset_password_offline(settings.data_dir, settings.db_path, user, password, SystemClock(),
                                         settings.database_url)
    except (CieloError, DataDirectoryError) as exc:
        raise CliError(str(exc)) from exc
    result: dict[str, Any] = {"dataDir": str(settings.data_dir), "id": changed.object_id,
                              "refreshTokensRevoked": True, "userPrincipalName": changed.upn}
    if generate:
        result["password"] = password
    return result


def default_data_dir_text() -> str:
    from cielo.settings import default_data_dir

    return str(default_data_dir())
