"""Plain records handed out by the repositories (SQLAlchemy rows never leave store/)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Tenant:
    id: str
    display_name: str
    default_domain: str
    created_at: float


@dataclass(frozen=True)
class Subscription:
    id: str
    tenant_id: str
    display_name: str
    state: str


@dataclass(frozen=True)
class User:
    object_id: str
    tenant_id: str
    upn: str
    display_name: str
    password_hash: str
    is_admin: bool
    account_enabled: bool
    created_at: float


@dataclass(frozen=True)
class Group:
    object_id: str
    tenant_id: str
    display_name: str
    mail_nickname: str
    description: str | None
    created_at: float


@dataclass(frozen=True)
class PasswordCredential:
    key_id: str
    display_name: str | None
    hint: str
    secret_hash: str
    start: float
    end: float


@dataclass(frozen=True)
class KeyCredential:
    key_id: str
    display_name: str | None
    cert_der: bytes
    start: float
    end: float


@dataclass(frozen=True)
class FederatedCredential:
    id: str
    name: str
    issuer: str
    subject: str
    audiences: tuple[str, ...]
    description: str | None


@dataclass(frozen=True)
class Application:
    object_id: str
    tenant_id: str
    app_id: str
    display_name: str
    is_public_client: bool
    access_token_version: int
    identifier_uris: tuple[str, ...]
    redirect_uris: tuple[str, ...]
    created_at: float
    passwords: tuple[PasswordCredential, ...] = field(default=())
    keys: tuple[KeyCredential, ...] = field(default=())
    federated: tuple[FederatedCredential, ...] = field(default=())


@dataclass(frozen=True)
class ServicePrincipal:
    object_id: str
    tenant_id: str
    app_id: str
    display_name: str
    sp_type: str
    created_at: float


@dataclass(frozen=True)
class AuthCode:
    code_hash: str
    tenant_id: str
    client_id: str
    user_id: str
    redirect_uri: str
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None
    nonce: str | None
    expires_at: float
    redeemed: bool
    family_id: str | None


@dataclass(frozen=True)
class DeviceCode:
    device_code_hash: str
    user_code: str
    tenant_id: str | None
    client_id: str
    scope: str
    expires_at: float
    status: str
    user_id: str | None
    last_poll: float | None


@dataclass(frozen=True)
class RefreshToken:
    token_hash: str
    family_id: str
    tenant_id: str
    client_id: str
    user_id: str
    expires_at: float
    redeemed: bool
    revoked: bool
