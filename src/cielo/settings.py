"""Server settings, read once at start (environment `CIELO_*`, then command-line overrides)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "cielo"


class Settings(BaseSettings):
    """Everything `cielo up` needs. See docs/configuration.md for each field."""

    model_config = SettingsConfigDict(env_prefix="CIELO_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    host: str = "127.0.0.1"
    port: int = 8443
    listen_443: bool = False
    # Extra names (DNS names or IPs) for the server certificate, besides localhost and 127.0.0.1.
    tls_names: list[str] = Field(default_factory=list)
    # The public base URL: the issuer of every token. Defaults to https://{host}:{port}.
    public_url: str | None = None
    admin_user: str | None = None
    admin_password: str | None = None
    # Access-token lifetime is drawn uniformly from this range, like Entra's 60-90 minutes.
    token_lifetime_min_s: int = 3600
    token_lifetime_max_s: int = 5400
    refresh_token_lifetime_s: int = 90 * 24 * 3600
    # Managed-identity tokens live about a day in Azure (exp - iat near 86,400 s in decoded MI tokens that
    # public issues show, although the IMDS docs' sample says expires_in 3599).
    managed_identity_token_lifetime_s: int = 86400
    device_code_lifetime_s: int = 900
    device_code_interval_s: int = 5
    auth_code_lifetime_s: int = 600
    clock_skew_s: int = 300
    max_form_bytes: int = 64 * 1024
    # Request-body limits per surface, enforced while the body streams in (413 before buffering).
    max_arm_body_bytes: int = 1024 * 1024
    max_graph_body_bytes: int = 1024 * 1024
    max_openai_body_bytes: int = 4 * 1024 * 1024
    # Smart lockout (Entra: AADSTS50053 after about 10 failures): after `lockout_threshold` wrong passwords
    # a user is locked for `lockout_duration_s`, doubling with each further lockout up to `lockout_max_s`.
    lockout_threshold: int = 10
    lockout_duration_s: float = 60.0
    lockout_max_s: float = 3600.0
    # Per client address: at most this many failed password sign-ins per `signin_throttle_window_s`
    # across all users and password paths (ROPC, the sign-in form, the device-login page).
    signin_throttle_failures: int = 100
    signin_throttle_window_s: float = 60.0
    workers: int = 1
    # Redis shared by replicas (`redis://host:6379/0`): quota windows, sign-in lockout counts and the change feed
    # that keeps every replica's caches current. None (the default): all of it stays on this machine.
    redis_url: str | None = Field(default=None, repr=False)
    # Prefix of every Redis key and channel Cielo uses, so that several Cielo installations can share one Redis.
    redis_prefix: str = "cielo"
    # Models: local GGUF files (`NAME=PATH`) and OpenAI-compatible upstreams (`NAME=URL[,model=M][,api-key-env=V]`)
    # a deployment may name, besides the embedded SmolLM2-135M-Instruct and multilingual-e5-small.
    gguf: list[str] = Field(default_factory=list)
    upstreams: list[str] = Field(default_factory=list)
    # A YAML file of backend pools (docs/backend-pools.md); an `--upstream` NAME given twice makes a pool too.
    backends_file: Path | None = None
    model_ctx: int = 4096
    model_parallel: int = 2
    model_threads: int | None = None
    # A deterministic echo model named `mock`, for tests only; never on by default.
    enable_mock_model: bool = False
    # Azure takes up to ~5 minutes to apply a role change; 0 applies it to the very next request.
    rbac_propagation_delay_s: float = 0.0
    # Monitoring (docs/monitoring.md). The activity log keeps events this many days (older ones are deleted hourly).
    activity_log_retention_days: float = Field(90.0, gt=0)
    # /metrics answers loopback callers; any other caller needs `Authorization: Bearer <metrics_token>`, the token
    # given as is (environment) or as its SHA-256 hex digest (`metrics_token_sha256`, for a config kept on disk).
    metrics_token: str | None = Field(default=None, repr=False)
    metrics_token_sha256: str | None = None
    # Access log: one line per request at info level (`access_log`), `plain` text or `json` lines.
    access_log: bool = True
    log_format: Literal["plain", "json"] = "plain"
    # Upstream engines (`upstreams`): seconds to connect (then 504), for the answer to start (a non-streamed
    # answer: all of it; a stream: its first event; then Azure's 408 Timeout), and between two events of a
    # stream (then the stream ends with an error event). See docs/data-plane.md.
    upstream_connect_timeout_s: float = Field(10.0, gt=0)
    upstream_first_byte_timeout_s: float = Field(120.0, gt=0)
    upstream_idle_timeout_s: float = Field(60.0, gt=0)
    log_level: str = "info"
    # The database of record: None is SQLite in the data directory (the embedded default); a SQLAlchemy URL
    # (`postgresql+psycopg://user@host/db`) is a server every replica shares (docs/deployment.md).
    database_url: str | None = None
    # The key-encryption key (KEK) that seals the signing keys, the sealing key and the CA stored in a shared
    # database: required with a PostgreSQL `database_url`, given by the environment or a file (never a flag).
    key_encryption_key: str | None = Field(default=None, repr=False)
    key_encryption_key_file: Path | None = None
    # A server certificate of this replica's own (PEM files); otherwise Cielo issues one from its CA.
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @field_validator("tls_names", "gguf", "upstreams", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower_format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = self.host if self.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return f"https://{host}:{self.port}"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "cielo.db"

    @property
    def database(self) -> str | Path:
        """Where the database is: the `database_url`, else the SQLite file in the data directory."""
        return self.database_url or self.db_path

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"
