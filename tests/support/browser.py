"""A person at a browser on Cielo's sign-in pages: fetch the page, keep its cookie, post its form."""

from __future__ import annotations

import re
from typing import Any

import httpx

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(page: httpx.Response) -> str:
    found = _CSRF.search(page.text)
    assert found, f"no anti-CSRF token in the page: {page.text[:500]}"
    return found.group(1)


def device_login(base_url: str, verify: Any, user_code: str, username: str, password: str,
                 decision: str = "approve") -> httpx.Response:
    """Enter the code, read who is asking, then sign in and allow (or deny). Returns the last answer."""
    with httpx.Client(base_url=base_url, verify=verify, timeout=30) as browser:
        page = browser.get("/devicelogin")
        assert page.status_code == 200, page.text
        consent = browser.post("/devicelogin", data={"user_code": user_code, "csrf_token": csrf_token(page)})
        if consent.status_code != 200:
            return consent
        form = {"user_code": user_code, "csrf_token": csrf_token(consent), "decision": decision}
        if decision == "approve":
            form |= {"username": username, "password": password}
        return browser.post("/devicelogin", data=form)
