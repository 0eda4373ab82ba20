"""Which `Host` header values the agent answers: its defence against DNS rebinding.

A web page a browser on this host loads from `evil.example` can have `evil.example` resolve to 127.0.0.1
a moment later and send requests to the agent's port as "same origin". The browser still names the site
in `Host`, so the agent answers only requests whose `Host` names an address it serves (127.0.0.1,
localhost, [::1], 169.254.169.254, any port) or a name the operator added (`cielo agent --allow-host`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LOCAL_NAMES = frozenset({"localhost"})
LOCAL_ADDRESSES: frozenset[IpAddress] = frozenset(
    ipaddress.ip_address(a) for a in ("127.0.0.1", "::1", "169.254.169.254"))
# RFC 3986 reg-name as DNS and container/service names use it: labels of letters, digits, '-' and '_'.
_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$")
_PORT = re.compile(r"^[0-9]{0,5}$")


def _host(text: str) -> IpAddress | str | None:
    """An address or a lower-case name without its trailing dot; None when `text` is neither."""
    if text.startswith("[") and text.endswith("]"):
        try:
            return ipaddress.IPv6Address(text[1:-1])
        except ValueError:
            return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    name = text.lower().removesuffix(".")
    return name if _NAME.match(name) else None


def parse_host_header(value: str) -> IpAddress | str | None:
    """The host a `Host` header names (RFC 9110 §7.2: uri-host [":" port]), or None when it is malformed."""
    host, port = value, ""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[:end + 1], value[end + 1:]
        if rest and not rest.startswith(":"):
            return None
        port = rest[1:]
    elif ":" in value:
        host, port = value.rsplit(":", 1)
        if ":" in host:  # an IPv6 address must be in brackets
            return None
    if not _PORT.match(port) or (port and int(port) > 65535):
        return None
    return _host(host)


def parse_allowed_host(value: str) -> IpAddress | str:
    """A name or address given to --allow-host (no port; an IPv6 address with or without brackets)."""
    parsed = _host(value.strip())
    if parsed is None:
        raise ValueError(f"{value!r} is not a host name or an IP address (give it without a port)")
    return parsed


class HostAllowList:
    """The Host values the agent answers: its own addresses and names, plus those the operator added."""

    def __init__(self, extra: Iterable[str] = ()) -> None:
        self._allowed: set[IpAddress | str] = set(LOCAL_NAMES) | set(LOCAL_ADDRESSES)
        self._allowed.update(parse_allowed_host(value) for value in extra)

    def permits(self, host_header: str | None) -> bool:
        if host_header is None:
            return False
        return parse_host_header(host_header) in self._allowed
