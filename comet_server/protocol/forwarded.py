"""Who the client is behind a proxy: forwarding headers believed only from trusted peers.

As gunicorn's ``forwarded_allow_ips`` and uvicorn's ``ProxyHeadersMiddleware`` do: a
request from a trusted proxy names its client in ``X-Forwarded-For`` (or ``Forwarded:
for=``) and its scheme in ``X-Forwarded-Proto`` (or ``Forwarded: proto=``).  From
any other peer the forwarding headers are removed before the application sees them
(Django trusts ``X-Forwarded-Proto`` for ``is_secure()``), and such a request counts as
*claiming* a forward: it is never a loopback client for the operator's endpoints, so
an operator who put a proxy in front and forgot ``--forwarded-allow-ips`` leaks
nothing (the proxy's own loopback address does not open ``/metrics`` to the world).

Pure functions on header lists; no I/O.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

# Headers a proxy sets to describe its client; none is believed from other peers.
FORWARDING_HEADERS = frozenset({
    b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host",
    b"x-forwarded-port", b"x-forwarded-ssl", b"x-forwarded-scheme", b"x-real-ip",
})
_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Client:
    """The client of one request as the server should see it."""

    address: str
    port: str
    scheme: str  # "http" or "https": the WSGI url_scheme
    headers: Headers  # the request's headers, forwarding ones removed if untrusted
    claims_forward: bool  # an untrusted peer sent forwarding headers (never loopback)
    proxied: bool  # a trusted proxy named the client (counted per request, not socket)

    @property
    def loopback(self) -> bool:
        """Whether this is a loopback client (the operator's own machine)."""
        return not self.claims_forward and is_loopback(self.address)


def resolve(peer: tuple[str, str], headers: Headers, trusted: frozenset[str]) -> Client:
    """The client behind ``peer`` for a request with ``headers``."""
    if peer[0] in trusted:
        address = forwarded_for(headers, trusted)
        scheme = forwarded_proto(headers) or "http"
        if address is None:
            return Client(peer[0], peer[1], scheme, headers, False, False)
        return Client(address, "", scheme, headers, False, True)
    if not any(name.lower() in FORWARDING_HEADERS for name, _ in headers):
        return Client(peer[0], peer[1], "http", headers, False, False)
    kept = [(name, value) for name, value in headers
            if name.lower() not in FORWARDING_HEADERS]
    return Client(peer[0], peer[1], "http", kept, True, False)


def forwarded_for(headers: Headers, trusted: frozenset[str]) -> str | None:
    """The client a trusted proxy names: the rightmost hop that is not itself a trusted
    proxy (what is left of it the client could have forged).  ``X-Forwarded-For`` when
    present, else ``Forwarded``'s ``for=``; ``None`` when neither names an address."""
    hops: list[str] = []
    for name, value in headers:
        if name.lower() == b"x-forwarded-for":
            hops.extend(part.strip() for part in value.decode("latin-1").split(","))
    if not hops:
        hops = [pair.get("for", "") for pair in _forwarded_elements(headers)]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return None  # garbage or an obfuscated hop: keep the proxy's own address
        if address not in trusted:
            return address
    return None


def forwarded_proto(headers: Headers) -> str | None:
    """The scheme the client used, as the proxy next to us says (its last value)."""
    value = None
    for name, raw in headers:
        if name.lower() == b"x-forwarded-proto":
            value = raw.decode("latin-1").split(",")[-1]
    if value is None:
        protos = [pair["proto"] for pair in _forwarded_elements(headers) if "proto" in pair]
        value = protos[-1] if protos else None
    return None if value is None else _SCHEMES.get(value.strip().lower())


def _forwarded_elements(headers: Headers) -> list[dict[str, str]]:
    """The elements of ``Forwarded`` headers (RFC 7239), each a dict of its pairs."""
    elements = []
    for name, value in headers:
        if name.lower() != b"forwarded":
            continue
        for element in value.decode("latin-1").split(","):
            pairs = {}
            for pair in element.split(";"):
                key, sep, val = pair.partition("=")
                if sep:
                    pairs[key.strip().lower()] = val.strip().strip('"')
            elements.append(pairs)
    return elements


def _address(hop: str) -> str | None:
    """A hop as a normalised IP address (``[v6]:port`` and ``v4:port`` forms too)."""
    hop = hop.strip()
    if hop.startswith("["):
        hop = hop[1:].partition("]")[0]
    elif hop.count(":") == 1:
        hop = hop.partition(":")[0]
    try:
        return str(ipaddress.ip_address(hop))
    except ValueError:
        return None


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False
