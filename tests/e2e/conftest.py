"""Fixtures for the end-to-end identity tests (test_identity_*.py). Helpers: identity_support.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from identity_support import (
    EXCHANGE_AUDIENCE,
    Metadata,
    OidcIssuer,
    UserAccount,
    fetch_metadata,
    graph,
    listens_on_443,
    make_certificate,
    new_app,
    new_user,
    register_certificate,
    start_oidc_issuer,
)

from support.server import CieloServer


@pytest.fixture(scope="session")
def metadata(cielo_server: CieloServer) -> Metadata:
    return fetch_metadata(cielo_server)


@pytest.fixture(scope="session")
def needs_443(cielo_server: CieloServer) -> None:
    if not listens_on_443(cielo_server):
        pytest.skip("the session server could not bind 127.0.0.1:443, and MSAL sends ROPC's user-realm "
                    "call to port 443 whatever the authority's port (observed with msal 1.39)")


@pytest.fixture(scope="session")
def member_user(cielo_server: CieloServer) -> UserAccount:
    """An ordinary (non-administrator) member of the tenant."""
    return new_user(cielo_server)


@pytest.fixture(scope="session")
def cert_app(cielo_server: CieloServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An application with a service principal and one registered certificate (no secret)."""
    app = new_app(cielo_server, "e2e-cert", secret=False)
    cert = make_certificate(tmp_path_factory.mktemp("cert"))
    register_certificate(cielo_server, app, cert)
    return {**app, "cert": cert}


@pytest.fixture(scope="session")
def oidc_issuer(cielo_server: CieloServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcIssuer]:
    issuer = start_oidc_issuer(cielo_server.data_dir / "tls", tmp_path_factory.mktemp("issuer"))
    yield issuer
    issuer.stop()


@pytest.fixture(scope="session")
def federated_app(cielo_server: CieloServer, oidc_issuer: OidcIssuer) -> dict[str, Any]:
    """An application (no secret) that trusts one subject of the test OIDC issuer."""
    app = new_app(cielo_server, "e2e-wi", secret=False)
    subject = "system:serviceaccount:default:workload"
    graph(cielo_server, "POST", f"/applications/{app['objectId']}/federatedIdentityCredentials", {
        "name": "k8s", "issuer": oidc_issuer.url, "subject": subject, "audiences": [EXCHANGE_AUDIENCE],
    })
    return {**app, "subject": subject}
