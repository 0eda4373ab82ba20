"""Reading request bodies within a limit while they stream in, and refusing JSON nested too deeply.

Every surface reads its body through `read_limited`, so no body is ever buffered past its surface's
limit (`settings.max_*_bytes`): a declared `Content-Length` over the limit is refused before a byte is
read, and a chunked or undeclared body as soon as the running count passes it (RFC 9110 §15.5.14, 413).
Each surface passes a factory for its own error, so the 413 is rendered in that surface's envelope.

`nested_deeper_than` protects `json.loads` and everything that walks a parsed body: 100,000 `[` fit under
any limit and would otherwise raise RecursionError (a 500). The limit, 64 levels, is what .NET's
System.Text.Json and Newtonsoft.Json default to, so no body Azure accepts is refused here.

`lone_surrogate_in` finds text that is not Unicode: a UTF-16 surrogate (U+D800 to U+DFFF) without its pair,
written as a JSON escape (`"\\ud800"`) or as its three UTF-8 bytes, both of which `json.loads` turns into a
Python string that cannot be encoded as UTF-8. Stored, such a string broke every later response that listed
it (a 500 on each read, across restarts). `read_limited` refuses it (400) on the resource manager's and the
directory API's JSON bodies, in their envelopes, before anything else reads them; the data plane checks its
parsed body instead (dataplane/wire.py: cheaper on its large bodies); form bodies are decoded as strict UTF-8
(http/forms.py), which refuses a surrogate there. Paths and query strings cannot carry one: the server
percent-decodes them with replacement (`%ED%A0%80` becomes U+FFFD), and headers are decoded as Latin-1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from itertools import accumulate

from starlette.requests import Request

from cielo.errors import BadRequest, InvalidRequestContent
from cielo.http.surfaces import Surface, surface_of

MAX_JSON_DEPTH = 64

# A JSON string after escapes are gone: from a quote to the next quote or the end of the text. Possessive,
# and matching at every quote, so the scan stays linear whatever the input (no backtracking, no retries).
_STRING = re.compile(rb'"[^"]*+"?')
_NOT_QUOTE_OR_BRACKET = bytes(b for b in range(256) if b not in b'"[]{}')
_STEP = tuple(1 if b in b"[{" else -1 if b in b"]}" else 0 for b in range(256))

# A surrogate as UTF-8 bytes: ED A0..BF xx (RFC 3629 §3 excludes them; json.loads decodes with "surrogatepass").
_SURROGATE_BYTES = re.compile(rb"\xed[\xa0-\xbf]")
# A `\uXXXX` escape of a surrogate, and a high one followed by a low one (a pair, which is one code point).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE_PAIR = re.compile(rb"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}")
_UNENCODABLE = ("a UTF-16 surrogate (\\ud800 to \\udfff) without its pair is not Unicode text and cannot be "
                "stored.")


# The surfaces whose JSON bodies `read_limited` checks, and their 400s (ARM's InvalidRequestContent, and the
# directory API's answer to a payload it cannot read, as for malformed JSON).
_SCANNED = (Surface.ARM, Surface.GRAPH)


def _unencodable(surface: Surface) -> BadRequest:
    if surface is Surface.ARM:
        return InvalidRequestContent(f"The request content was invalid and could not be deserialized: {_UNENCODABLE}")
    return BadRequest(f"Unable to read JSON request payload: {_UNENCODABLE}")


async def read_limited(request: Request, limit: int, too_large: Callable[[], Exception]) -> bytes:
    """The body, at most `limit` bytes; else `too_large()` is raised before more than `limit` is held.
    On the resource manager's and the directory API's paths, a body with a lone surrogate is refused (400)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isascii() or not declared.isdigit() or len(declared) > 18
                                 or int(declared) > limit):
        raise too_large()
    received = bytearray()
    async for chunk in request.stream():
        if len(received) + len(chunk) > limit:
            raise too_large()
        received += chunk
    body = bytes(received)
    if body:
        surface = surface_of(request.scope.get("path", "/"))
        if surface in _SCANNED and lone_surrogate_in(body):
            raise _unencodable(surface)
    return body


def nested_deeper_than(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON text `raw` nests arrays and objects more than `max_depth` deep (brackets inside
    strings do not count). Exact for valid JSON; for invalid JSON it only says whether some prefix opens
    more than `max_depth` brackets, and `json.loads` reports the rest.

    Byte-level operations only (a Python loop per byte would cost ~50 ns/byte): about as fast as
    `json.loads` itself on the same text, and far cheaper on text `json.loads` would choke on.
    """
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return False
    # Escapes first, left to right as a JSON lexer pairs them: what remains of `\\` and `\"` is gone, so
    # every quote left opens or closes a string. Then only quotes and brackets are kept; `""` (an empty
    # string, or two strings with no bracket between them) is dropped; what is left of strings is cut out.
    reduced = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_QUOTE_OR_BRACKET)
    brackets = _STRING.sub(b"", reduced.replace(b'""', b""))
    if len(brackets) <= max_depth:
        return False
    return max(accumulate(map(_STEP.__getitem__, brackets))) > max_depth


def lone_surrogate_in(raw: bytes) -> bool:
    """Whether the JSON text `raw` holds a UTF-16 surrogate without its pair, escaped or as UTF-8 bytes; for
    UTF-16 and UTF-32 text (which `json.loads` also accepts), any surrogate its strict decoder refuses.

    Exact for valid JSON; for invalid JSON `json.loads` reports the rest. Byte-level passes only, each done only
    when the one before found something: two memchr passes (~0.1 ms a MB) for a body without escapes, ~4 ms a MB
    with some, ~30 ms a MB at worst (nothing but escaped emoji: every pair is cut out). The data plane, whose
    bodies are larger and hotter, checks its parsed body instead (dataplane/wire.py).
    """
    encoding = json.detect_encoding(raw)
    if encoding not in ("utf-8", "utf-8-sig"):
        try:
            raw = raw.decode(encoding).encode("utf-8")
        except UnicodeError:
            return True
    elif b"\xed" in raw and _SURROGATE_BYTES.search(raw):
        return True
    if b"\\" not in raw:
        return False
    # Escaped backslashes go first, pairing left to right as a JSON lexer does: every backslash left starts an
    # escape, so `\\ud800` (a backslash, then the letters "ud800") is not taken for one. They are replaced, not
    # removed: `\\ud83d\\\\\\udc00` is two lone halves, not a pair.
    escapes = raw.replace(b"\\\\", b"..")
    if not _SURROGATE_ESCAPE.search(escapes):
        return False
    return _SURROGATE_ESCAPE.search(_SURROGATE_PAIR.sub(b"", escapes)) is not None


def describe_size(limit: int) -> str:
    """`4 MB`, `64 KB` or `1000 bytes`, as ARM words its limit."""
    for unit, name in ((1024 * 1024, "MB"), (1024, "KB")):
        if limit >= unit and limit % unit == 0:
            return f"{limit // unit} {name}"
    return f"{limit} bytes"
