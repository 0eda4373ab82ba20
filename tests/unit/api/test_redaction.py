from __future__ import annotations

import logging

import pytest

from cielo.logging_setup import RedactingFilter, install_redaction, redact


@pytest.mark.parametrize(
    "text, secret",
    [
        ("POST /t/oauth2/v2.0/token client_secret=abc8Q~SECRETVALUE&grant_type=x", "abc8Q~SECRETVALUE"),
        ("password=Hunter2!&username=a", "Hunter2!"),
        ('{"secretText": "xyz8Q~topsecret"}', "xyz8Q~topsecret"),
        ("Authorization: Bearer opaque-token-value", "opaque-token-value"),
        ("GET /cb?code=1.AauthCODE&state=s", "1.AauthCODE"),
        ("refresh_token=1.ArefreshTOKEN", "1.ArefreshTOKEN"),
        ("token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl end", "eyJhbGciOiJSUzI1NiJ9"),
    ],
)
def test_redact_removes_secrets(text: str, secret: str) -> None:
    assert secret not in redact(text)


def test_filter_rewrites_records(caplog: pytest.LogCaptureFixture) -> None:
    install_redaction()
    logger = logging.getLogger("cielo.test")
    logger.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="cielo.test"):
        logger.info("form %s", "client_secret=abc8Q~VERYSECRET")
    assert "abc8Q~VERYSECRET" not in caplog.text and "<redacted>" in caplog.text
