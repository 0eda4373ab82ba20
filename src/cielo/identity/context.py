"""What every grant needs: the directory, grant state, the minter, the clock and the settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cielo.core.clock import Clock
from cielo.identity.clients import ClientAuthenticator
from cielo.identity.directory_view import DirectoryView
from cielo.identity.signin_guard import SignInGuard
from cielo.identity.tokens import TokenMinter
from cielo.settings import Settings
from cielo.store.grants import GrantRepo
from cielo.store.models import Tenant


@dataclass(frozen=True)
class GrantContext:
    settings: Settings
    directory: DirectoryView
    grants: GrantRepo
    minter: TokenMinter
    clients: ClientAuthenticator
    clock: Clock
    signin: SignInGuard


@dataclass(frozen=True)
class TokenRequest:
    """One call of the token endpoint. `tenant` is None for `common` and `organizations`."""

    tenant: Tenant | None
    tenant_segment: str
    version: int
    form: Mapping[str, str]
    basic: tuple[str, str] | None
    assertion_audiences: tuple[str, ...]
    # The caller's network address, for per-address sign-in throttling ("" when unknown).
    client_address: str = ""
