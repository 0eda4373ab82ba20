"""Client authentication at the token endpoint (RFC 6749 §2.3, RFC 7523 §2.2, Entra's variants).

A client proves itself with a secret (form or HTTP Basic), a certificate-signed assertion
(RS256 + x5t as MSAL sends it, PS256 + x5t#S256 as azure-identity's async client sends it), or an
assertion from a trusted external issuer (workload identity federation). Public clients (the
first-party Azure CLI, or apps marked public) must present none of these.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509
from jwt import PyJWK, PyJWKSet

from cielo.core.resources import FIRST_PARTY_PUBLIC_CLIENTS
from cielo.errors import InvalidClient, InvalidRequest, UnauthorizedClient
from cielo.identity import assertions
from cielo.identity.directory_view import DirectoryView
from cielo.identity.federation import FederationError, JwksFetcher
from cielo.identity.keys import KeyRing
from cielo.identity.secrets import secret_matches
from cielo.store.models import Application, Tenant

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True)
class Client:
    app_id: str
    display_name: str
    public: bool
    acr: str  # Entra's appidacr: "0" public, "1" secret, "2" certificate or assertion
    application: Application | None


class ClientAuthenticator:
    def __init__(
        self,
        directory: DirectoryView,
        keys: KeyRing,
        jwks: JwksFetcher,
        own_issuers: Collection[str],
        skew_s: float = assertions.DEFAULT_SKEW,
    ) -> None:
        self._directory = directory
        self._skew = skew_s
        self._keys = keys
        self._jwks = jwks
        self._own_issuers = {i.rstrip("/") for i in own_issuers}

    def authenticate(
        self,
        tenant: Tenant,
        form: Mapping[str, str],
        *,
        basic: tuple[str, str] | None,
        audiences: Collection[str],
        now: float,
        confidential_required: bool,
    ) -> Client:
        client_id = form.get("client_id", "")
        secret = form.get("client_secret")
        if basic is not None:
            if client_id and client_id != basic[0]:
                raise InvalidRequest("AADSTS900144: client_id differs in the Authorization header and body.")
            client_id, secret = basic
        if not client_id:
            raise InvalidRequest(
                "The request body must contain the following parameter: 'client_id'.", aadsts=900144
            )
        client_id = client_id.strip().lower()
        assertion = form.get("client_assertion")
        first_party = FIRST_PARTY_PUBLIC_CLIENTS.get(client_id)
        if first_party is not None:
            if secret or assertion:
                raise _public_with_credential()
            if confidential_required:
                raise _credential_missing()
            return Client(client_id, first_party, True, "0", None)
        app = self._directory.application(client_id)
        if app is None or app.tenant_id != tenant.id:
            raise UnauthorizedClient(
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant.default_domain}'. This can happen if the application has not been installed by "
                "the administrator of the tenant or consented to by any user in the tenant.",
                aadsts=700016,
            )
        if secret:
            return Client(app.app_id, app.display_name, False, "1", self._check_secret(app, secret, now))
        if assertion:
            if form.get("client_assertion_type") != JWT_BEARER:
                raise InvalidRequest(
                    "The client_assertion_type must be "
                    "'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'.",
                    aadsts=50027,
                )
            self._check_assertion(app, assertion, audiences, now)
            return Client(app.app_id, app.display_name, False, "2", app)
        if app.is_public_client and not confidential_required:
            return Client(app.app_id, app.display_name, True, "0", app)
        raise _credential_missing()

    def _check_secret(self, app: Application, secret: str, now: float) -> Application:
        for cred in app.passwords:
            if secret_matches(cred.secret_hash, secret):
                if cred.end < now:
                    raise InvalidClient(
                        f"The provided client secret keys for app '{app.app_id}' are expired. Visit the "
                        "Azure portal to create new keys for your app.",
                        aadsts=7000222,
                    )
                return app
        raise InvalidClient(
            "Invalid client secret provided. Ensure the secret being sent in the request is the client "
            f"secret value, not the client secret ID, for a secret added to app '{app.app_id}'.",
            aadsts=7000215,
        )

    def _check_assertion(
        self, app: Application, assertion: str, audiences: Collection[str], now: float
    ) -> None:
        """Blocking (a federated issuer's keys may be fetched): the token endpoint runs it on a worker thread."""
        try:
            parsed = assertions.parse_jwt(assertion)
        except assertions.InvalidAssertion as exc:
            raise InvalidClient("Client assertion is malformed.", aadsts=50027) from exc
        issuer = parsed.claims.get("iss")
        try:
            if issuer == app.app_id or issuer == app.app_id.upper():
                certs = [
                    x509.load_der_x509_certificate(k.cert_der)
                    for k in app.keys
                    if k.start - self._skew <= now <= k.end
                ]
                # No jti replay check: MSAL reuses one assertion for about nine minutes across requests
                # (its AutoRefresher), and Entra accepts that.
                assertions.verify_certificate_assertion(
                    assertion, client_id=app.app_id, audiences=audiences, certificates=certs, skew=self._skew
                )
                return
            self._check_federated(app, parsed, assertion)
        except assertions.InvalidAssertion as exc:
            raise _assertion_error(app, exc) from exc

    def _check_federated(self, app: Application, parsed: assertions.ParsedJwt, assertion: str) -> None:
        issuer = str(parsed.claims.get("iss", ""))
        subject = str(parsed.claims.get("sub", ""))
        matches = [f for f in app.federated if f.issuer == issuer and f.subject == subject]
        if not matches:
            raise InvalidClient(
                "AADSTS70021: No matching federated identity record found for presented assertion. "
                f"Assertion Issuer: '{issuer}'. Assertion Subject: '{subject}'.",
                aadsts=70021,
            )
        audiences = {a for f in matches for a in f.audiences}
        keys: Sequence[PyJWK]
        if issuer.rstrip("/") in self._own_issuers:
            keys = PyJWKSet.from_dict(self._keys.jwks()).keys
        else:
            try:
                keys = self._jwks.keys(issuer)
                kid = parsed.header.get("kid")
                if kid and all(k.key_id != kid for k in keys):
                    keys = self._jwks.keys(issuer, refresh=True)
            except FederationError as exc:
                raise InvalidClient(
                    f"AADSTS700211: Could not fetch the signing keys of issuer '{issuer}': {exc}",
                    aadsts=700211,
                ) from exc
        assertions.verify_federated_assertion(
            assertion, keys=keys, issuer=issuer, subject=subject, audiences=audiences, skew=self._skew
        )


def _public_with_credential() -> InvalidClient:
    return InvalidClient(
        "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
        aadsts=700025,
    )


def _credential_missing() -> InvalidClient:
    return InvalidClient(
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        aadsts=7000218,
    )


_ASSERTION_CODES = {
    "expired": (700024, "Client assertion is not within its valid time range."),
    "not_yet_valid": (700024, "Client assertion is not within its valid time range."),
    "lifetime_too_long": (700024, "Client assertion contains an invalid lifetime."),
    "wrong_audience": (700212, "Client assertion audience claim does not match the token endpoint."),
    "unknown_key": (700027, "The certificate with the assertion's thumbprint is not registered on the app."),
}


def _assertion_error(app: Application, exc: assertions.InvalidAssertion) -> InvalidClient:
    code, text = _ASSERTION_CODES.get(
        exc.reason, (700027, "Client assertion failed signature validation.")
    )
    if exc.reason == "replayed":
        code = 700025
    return InvalidClient(f"{text} (app '{app.app_id}', reason: {exc.reason})", aadsts=code)
