"""The admin portal, served at `/` (the `portalEndpoint` Cielo advertises in `/metadata/endpoints`).

Server-rendered (Jinja2 and a little plain JavaScript, no build step). It signs in through Cielo's own
authorization-code + PKCE flow and calls Cielo's ARM, Graph and data-plane APIs in-process with the signed-in
user's tokens: no back door (docs/portal.md).
"""

from __future__ import annotations

from cielo.web.portal import activity, auth, entra, iam, identity, openai, resources, static  # noqa: F401  (each registers its pages)
from cielo.web.portal.web import router

__all__ = ["router"]
