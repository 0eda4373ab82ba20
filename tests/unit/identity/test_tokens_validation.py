"""Minting and validating Cielo's own tokens: every check on every claim that matters."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest

from cielo.core.clock import FrozenClock
from cielo.identity import jwt
from cielo.identity.keys import KeyRing
from cielo.identity.tokens import Subject, TokenMinter, issuer_v1, issuer_v2
from cielo.identity.validation import TokenInvalid, TokenValidator

BASE = "https://127.0.0.1:8443"
TENANT = "11111111-1111-1111-1111-111111111111"
OTHER_TENANT = "22222222-2222-2222-2222-222222222222"
AUD = "https://cognitiveservices.azure.com"


@pytest.fixture()
def clock() -> FrozenClock:
    return FrozenClock(1_800_000_000.0)


@pytest.fixture(scope="module")
def made_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One keys directory as `ensure_key` made it (an RSA key is ~0.1 s to make): each test gets its own copy."""
    keys_dir = tmp_path_factory.mktemp("made") / "keys"
    KeyRing(keys_dir, 5400).ensure_key(FrozenClock(1_800_000_000.0).now())
    return keys_dir


@pytest.fixture()
def ring(tmp_path: Path, clock: FrozenClock, made_keys: Path) -> KeyRing:
    shutil.copytree(made_keys, tmp_path / "keys")
    keys = KeyRing(tmp_path / "keys", 5400)
    keys.ensure_key(clock.now())  # the copied key is current: nothing is made
    return keys


def _validator(ring: KeyRing, clock: FrozenClock, tenants: set[str] | None = None) -> TokenValidator:
    known = tenants if tenants is not None else {TENANT}
    return TokenValidator(ring, BASE, lambda t: t in known, clock, skew_s=300)


def _app_token(ring: KeyRing, clock: FrozenClock, **kwargs: object) -> str:
    minter = TokenMinter(ring, str(kwargs.pop("base", BASE)), (3600, 5400))
    minted = minter.access_token(
        Subject("app", "oid-1", str(kwargs.pop("tenant", TENANT))),
        audience=str(kwargs.pop("audience", AUD)),
        version=int(kwargs.pop("version", 1)),  # type: ignore[call-overload]
        client_app_id="app-1",
        client_auth="1",
        now=clock.now(),
    )
    return minted.token


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    decoded: dict[str, object] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return decoded


def test_v1_app_token_claims(ring: KeyRing, clock: FrozenClock) -> None:
    token = _app_token(ring, clock)
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "RS256" and header["kid"] == header["x5t"] == ring.signing_key().kid
    claims = _claims(token)
    assert claims["aud"] == AUD and claims["iss"] == issuer_v1(BASE, TENANT) == claims["idp"]
    assert claims["appid"] == "app-1" and claims["appidacr"] == "1" and claims["idtyp"] == "app"
    assert claims["oid"] == claims["sub"] == "oid-1" and claims["tid"] == TENANT and claims["ver"] == "1.0"
    lifetime = int(claims["exp"]) - int(claims["iat"])  # type: ignore[call-overload]
    assert 3600 <= lifetime <= 5400 and claims["nbf"] == claims["iat"]


def test_v2_user_token_claims(ring: KeyRing, clock: FrozenClock) -> None:
    minter = TokenMinter(ring, BASE, (3600, 3600))
    subject = Subject("user", "user-oid", TENANT, upn="ada@cielo.local", name="Ada", is_admin=True)
    token = minter.access_token(subject, audience="api-app-id", version=2, client_app_id="cli",
                                client_auth="0", scopes=("user_impersonation",), now=clock.now()).token
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert "x5t" not in header  # v2 headers carry kid only (Entra's access-tokens page)
    claims = _claims(token)
    assert claims["iss"] == issuer_v2(BASE, TENANT) and claims["ver"] == "2.0"
    assert claims["azp"] == "cli" and claims["azpacr"] == "0" and "appid" not in claims
    assert claims["scp"] == "user_impersonation" and claims["preferred_username"] == "ada@cielo.local"
    assert claims["sub"] != "user-oid" and claims["wids"] == ["62e90394-69f5-4237-9190-012177145e10"]


def test_validate_accepts_audience_with_or_without_trailing_slash(ring: KeyRing, clock: FrozenClock) -> None:
    validator = _validator(ring, clock)
    token = _app_token(ring, clock)
    assert validator.validate(token, [AUD + "/"]).object_id == "oid-1"
    assert validator.validate(token, [AUD]).tenant_id == TENANT


def test_validate_refuses_wrong_audience(ring: KeyRing, clock: FrozenClock) -> None:
    token = _app_token(ring, clock, audience="https://management.azure.com/")
    with pytest.raises(TokenInvalid) as info:
        _validator(ring, clock).validate(token, [AUD])
    assert info.value.reason == "audience"


def test_validate_refuses_expired_even_from_cache(ring: KeyRing, clock: FrozenClock) -> None:
    validator = _validator(ring, clock)
    token = _app_token(ring, clock)
    validator.validate(token, [AUD])
    clock.advance(5400 + 301)
    with pytest.raises(TokenInvalid) as info:
        validator.validate(token, [AUD])
    assert info.value.reason == "expired"


def test_validate_refuses_not_yet_valid(ring: KeyRing, clock: FrozenClock) -> None:
    token = _app_token(ring, clock)
    clock.advance(-301)
    with pytest.raises(TokenInvalid) as info:
        _validator(ring, clock).validate(token, [AUD])
    assert info.value.reason == "not_yet_valid"


def test_validate_refuses_foreign_issuer_and_unknown_tenant(ring: KeyRing, clock: FrozenClock) -> None:
    foreign = _app_token(ring, clock, base="https://evil.example")
    with pytest.raises(TokenInvalid) as info:
        _validator(ring, clock).validate(foreign, [AUD])
    assert info.value.reason == "issuer"
    other = _app_token(ring, clock, tenant=OTHER_TENANT)
    with pytest.raises(TokenInvalid) as info:
        _validator(ring, clock).validate(other, [AUD])
    assert info.value.reason == "tenant"


def test_validate_refuses_other_key_and_tampering(ring: KeyRing, clock: FrozenClock, tmp_path: Path) -> None:
    stranger = KeyRing(tmp_path / "other-keys", 5400)
    stranger.ensure_key(clock.now())
    forged = _app_token(stranger, clock)
    with pytest.raises(TokenInvalid) as info:
        _validator(ring, clock).validate(forged, [AUD])
    assert info.value.reason == "signature"
    good = _app_token(ring, clock)
    header, _payload, signature = good.split(".")
    claims = _claims(good)
    claims["oid"] = "someone-else"
    tampered_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenInvalid) as info:
        _validator(ring, clock).validate(f"{header}.{tampered_payload}.{signature}", [AUD])
    assert info.value.reason == "signature"


def test_validate_refuses_alg_none_and_garbage(ring: KeyRing, clock: FrozenClock) -> None:
    good = _app_token(ring, clock)
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    validator = _validator(ring, clock)
    with pytest.raises(TokenInvalid) as info:
        validator.validate(f"{none_header}.{good.split('.')[1]}.", [AUD])
    assert info.value.reason == "alg"
    for garbage in ("", "abc", "a.b.c", "x" * 20000):
        with pytest.raises(TokenInvalid):
            validator.validate(garbage, [AUD])


def test_rotation_keeps_old_key_until_its_tokens_expire(ring: KeyRing, clock: FrozenClock) -> None:
    old_kid = ring.signing_key().kid
    old_token = _app_token(ring, clock)
    new = ring.rotate(clock.now())
    assert new.kid != old_kid and ring.signing_key().kid == new.kid
    assert {k["kid"] for k in ring.jwks()["keys"]} == {old_kid, new.kid}
    validator = _validator(ring, clock)
    assert validator.validate(old_token, [AUD]).object_id == "oid-1"
    assert ring.prune(clock.now()) == []
    clock.advance(5400 + 301)
    assert ring.prune(clock.now()) == [old_kid]
    assert [k["kid"] for k in ring.jwks()["keys"]] == [new.kid]


def test_key_files_are_private(clock: FrozenClock, tmp_path: Path) -> None:
    KeyRing(tmp_path / "keys", 5400).ensure_key(clock.now())  # a key made here, not a copy
    key_files = list((tmp_path / "keys").glob("*.key"))
    assert key_files and all(f.stat().st_mode & 0o077 == 0 for f in key_files)
    assert (tmp_path / "keys").stat().st_mode & 0o077 == 0


def test_second_process_sees_rotation(ring: KeyRing, clock: FrozenClock, tmp_path: Path) -> None:
    other_view = KeyRing(tmp_path / "keys", 5400)
    before = other_view.signing_key().kid
    ring.rotate(clock.now())
    assert other_view.signing_key().kid != before


def test_jwt_split_rejects_non_objects() -> None:
    segment = base64.urlsafe_b64encode(b"[1,2]").rstrip(b"=").decode()
    with pytest.raises(jwt.JwtError):
        jwt.split(f"{segment}.{segment}.sig")
