"""What needs a browser beyond the how-to: the sign-in and device-login pages wearing the portal's stylesheet with
no Content-Security-Policy violation, and an app registration's certificate uploaded from a .cer file (DER, read by
the page's script) and its client secret shown once. Screenshots go to .portal-screenshots/."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from support.server import ADMIN_PASSWORD, ADMIN_USER, CieloServer

CLI = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"


def _der_certificate(path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portal-browser")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.DER))


def _styled(page: Any) -> None:
    """The page uses the portal's stylesheet: its card is white on the portal's grey, the brand bar dark blue."""
    card = page.evaluate("getComputedStyle(document.querySelector('main.signin-card')).backgroundColor")
    bar = page.evaluate("getComputedStyle(document.querySelector('header.topbar')).backgroundColor")
    assert (card, bar) == ("rgb(255, 255, 255)", "rgb(12, 59, 94)")


def test_sign_in_pages_look_like_the_portal_and_a_cer_file_uploads(portal_server: CieloServer, browser: Any,
                                                                    shots: Path, tmp_path: Path) -> None:
    server = portal_server
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1200, "height": 800})
    page = context.new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)

    # The device-login pages: enter the code, then the consent page naming the app.
    with server.http() as client:
        flow = client.post(f"/{server.tenant_id}/oauth2/v2.0/devicecode", data={
            "client_id": CLI, "scope": "https://management.azure.com/.default"}).json()
    page.goto(server.base_url + "/devicelogin")
    _styled(page)
    _shot(page, shots, "20-devicelogin")
    page.get_by_label("Code").fill("WRONG-CODE")
    page.get_by_role("button", name="Next").click()
    assert page.get_by_role("alert").is_visible()
    page.get_by_label("Code").fill(flow["user_code"])
    page.get_by_role("button", name="Next").click()
    assert page.get_by_role("heading", name="Are you trying to sign in").is_visible()
    _styled(page)
    _shot(page, shots, "21-device-consent")
    page.get_by_label("Email or user name").fill(ADMIN_USER)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in and allow").click()
    _styled(page)  # the message page
    _shot(page, shots, "22-device-done")

    # The portal's sign-in page, then an app registration.
    page.goto(server.base_url + "/portal/entra?tab=apps")
    _styled(page)
    _shot(page, shots, "23-signin")
    page.get_by_label("Email or user name").fill(ADMIN_USER)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/portal/entra?tab=apps")
    page.get_by_text("+ New registration").click()
    name = f"browser-app-{uuid.uuid4().hex[:6]}"
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_role("button", name="Create").click()
    page.wait_for_url("**/portal/entra/apps/*")
    cer = tmp_path / "portal.cer"
    _der_certificate(cer)
    page.get_by_label("Certificate file").set_input_files(str(cer))
    page.wait_for_function("document.getElementById('cert-text').value.length > 100")
    page.locator("#cert-description").fill("from a .cer file")
    page.get_by_role("button", name="Upload certificate").click()
    assert page.get_by_text("Certificate uploaded.").is_visible()
    assert page.get_by_role("cell", name="from a .cer file").is_visible()
    page.get_by_role("button", name="+ New client secret").click()
    secret = page.locator("#secret-value").input_value()
    assert len(secret) > 20 and page.get_by_text("shown this once").is_visible()
    _shot(page, shots, "24-app-secret-once")
    page.goto(page.url)  # the page again (a GET): the secret is gone
    assert page.get_by_role("heading", name="Client secrets").is_visible() and secret not in page.content()
    assert refused == [], refused
    context.close()


def _shot(page: Any, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
