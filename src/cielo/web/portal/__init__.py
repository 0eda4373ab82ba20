"""The admin portal, served at `/` (the `portalEndpoint` Cielo advertises in `/metadata/endpoints`)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
