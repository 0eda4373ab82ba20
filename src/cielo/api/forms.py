"""Moved to cielo/http/forms.py (shared with web/, which must not import api/). Kept as a re-export
for the routers that still import it from here; new code imports cielo.http.forms."""

from cielo.http.forms import basic_credentials, read_form, request_base

__all__ = ["basic_credentials", "read_form", "request_base"]
