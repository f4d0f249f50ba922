"""
Source address rules (§6, server-side request forgery).

istore fetches URLs that its users write into keys, so without rules anyone
who may register a key could make it read the cloud metadata service
(169.254.169.254), the admin port of a database on localhost, or a multicast
group. The rules:

- always refused: link-local (169.254.0.0/16 and fe80::/10: cloud metadata),
  multicast, unspecified ("this network", 0.0.0.0/8 and ::), reserved and
  broadcast addresses;
- loopback (127.0.0.0/8, ::1): refused unless ``ISTORE_ALLOW_LOOPBACK_SOURCES``;
- private ranges (10/8, 172.16/12, 192.168/16, fc00::/7, 100.64/10, ...):
  allowed unless ``ISTORE_ALLOW_PRIVATE_SOURCES=false``;
- ``ISTORE_ALLOWED_SOURCES``, when set, restricts sources to host names
  matching one of its shell-style patterns (``*.example.com``).

Each rule judges the host the connection is made to: the allow-list is
checked again in ``guarded_create_connection`` on the name urllib3 connects
to, whatever parser read the URL first. And a URL that two parsers would read
differently is refused outright (``ambiguity``): Python's ``urlsplit`` and
urllib3 disagree on where the host is in ``http://evil.example\\@allowed.example/``,
so its authority may hold only the characters RFC 3986 allows there, its host
only a DNS name or an IP literal, and both parsers must find the same host
and port. Writes refuse such keys (400, ``objects.sources.check_scheme``),
reads refuse them too (403) in case one was stored before.

The address rule is checked on the address actually connected to: the
connection classes below resolve the host name once, check every address it
gave, and connect the socket to a checked address (TLS still verifies the
certificate against the host name). A name that resolves to 127.0.0.1, and a
DNS answer that changes between a check and a connect (rebinding), are both
refused, before any packet is sent to the address. IPv4-mapped and
IPv4-compatible IPv6 addresses are judged as the IPv4 address they carry.
Proxies from the environment are ignored (``trust_env = False``): through a
proxy, istore could not see the address it really reaches.

Redirects are followed by ``objects.sources.http`` one hop at a time, so each
hop goes through ``check_url`` and a guarded connection again.
"""
import fnmatch
import ipaddress
import re
import socket
from urllib.parse import urlsplit

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, LocationParseError, NameResolutionError, NewConnectionError
from urllib3.util import parse_url
from urllib3.util.timeout import _DEFAULT_TIMEOUT

from ..errors import Forbidden

ALLOWED_SCHEMES = ("http", "https")
# "This network": connecting to 0.x.x.x reaches the local host on Linux.
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT, not is_private in Python


class SourceForbidden(Forbidden):
    code = "source_forbidden"


def _unwrap(address):
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        # IPv4-compatible (::a.b.c.d, deprecated but still routed by some stacks).
        if int(address) >> 32 == 0 and int(address) > 1:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def refusal(address):
    """Why istore will not connect to ``address`` (an ip_address or str), or None."""
    address = _unwrap(ipaddress.ip_address(address))
    if address.is_unspecified or (address.version == 4 and address in _THIS_NETWORK):
        return "an unspecified address"
    if address.is_link_local:
        return "a link-local address (cloud metadata lives there)"
    if address.is_multicast:
        return "a multicast address"
    if address.is_loopback:
        if settings.ISTORE_ALLOW_LOOPBACK_SOURCES:
            return None
        return "a loopback address (set ISTORE_ALLOW_LOOPBACK_SOURCES=true to allow it)"
    if address.version == 4 and address == ipaddress.IPv4Address("255.255.255.255"):
        return "the broadcast address"
    if address.is_reserved:
        return "a reserved address"
    if (address.is_private or (address.version == 4 and address in _SHARED)) and not address.is_global:
        if settings.ISTORE_ALLOW_PRIVATE_SOURCES:
            return None
        return "a private address (ISTORE_ALLOW_PRIVATE_SOURCES=false)"
    return None


def check_address(address, host=None):
    """Raise SourceForbidden unless istore may connect to ``address``."""
    reason = refusal(address)
    if reason:
        named = f"{host} resolves to {address}" if host and host != str(address) else f"{address}"
        raise SourceForbidden(f"The source address is refused: {named}, {reason}.")


def host_allowed(host):
    patterns = settings.ISTORE_ALLOWED_SOURCES
    if not patterns:
        return True
    host = host.lower().rstrip(".")
    return any(fnmatch.fnmatchcase(host, pattern.lower().strip()) for pattern in patterns)


# What RFC 3986 allows in an authority (userinfo@host:port): unreserved,
# percent-encoded, sub-delims, ":", "@", "[", "]"; and in a host, a DNS name
# or a bracketed IPv6 literal.
_AUTHORITY_RE = re.compile(r"[A-Za-z0-9\-._~%!$&'()*+,;=:@\[\]]*")
_HOST_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9.])?|\[[0-9A-Fa-f:.]+\]")


def ambiguity(url):
    """Why URL parsers could disagree on the host of ``url`` (an http or https URL), or None."""
    rest = url.partition("://")[2]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if not _AUTHORITY_RE.fullmatch(authority):
        return (f"its authority {authority[:80]!r} holds characters a URL may not have there "
                "(a backslash, a space, a control or non-ASCII character: write the host in ASCII, "
                "percent-encode the rest)")
    if authority.count("@") > 1:
        return f"its authority {authority[:80]!r} has more than one '@'"
    host_port = authority.rpartition("@")[2]
    if host_port.startswith("["):
        host, _, port = host_port.partition("]")
        host, port = host + "]", port.removeprefix(":") if port.startswith(":") else port or ""
    else:
        host, _, port = host_port.partition(":")
    if not _HOST_RE.fullmatch(host) or not (port == "" or port.isdigit()):
        return f"its host and port {host_port[:80]!r} are neither a DNS name nor an IP address with a port"
    try:
        ours = urlsplit(url)
        theirs = parse_url(url)
        same = (ours.hostname or "", ours.port) == ((theirs.host or "").strip("[]").lower(), theirs.port)
    except (ValueError, LocationParseError):
        return "it cannot be parsed"
    if not same:
        return "Python and urllib3 read different hosts in it"
    return None


def check_url(url):
    """Check what can be checked before connecting: scheme, host, host patterns.

    The host is read the way the connection will read it (urllib3's parser)
    after ``ambiguity`` made sure no other parser reads another one. Literal
    IP hosts are judged here too, so their refusal costs nothing.
    """
    scheme = url.partition("://")[0]
    if scheme not in ALLOWED_SCHEMES:
        raise SourceForbidden(f"The source URL {url!r} is not http or https.")
    reason = ambiguity(url)
    if reason:
        raise SourceForbidden(f"The source URL {url[:200]!r} is refused: {reason}.", code="ambiguous_source_url")
    host = parse_url(url).host.strip("[]").lower() if parse_url(url).host else ""
    if not host:
        raise SourceForbidden(f"The source URL {url!r} names no host.")
    check_host(host)
    try:
        literal = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return
    check_address(literal, host)


def check_host(host):
    """Raise SourceForbidden unless ``host`` matches ``ISTORE_ALLOWED_SOURCES`` (when set)."""
    if not host_allowed(host):
        raise SourceForbidden(
            f"The source host {host!r} matches none of ISTORE_ALLOWED_SOURCES "
            f"({', '.join(settings.ISTORE_ALLOWED_SOURCES)})."
        )


def guarded_create_connection(host, port, timeout=_DEFAULT_TIMEOUT, source_address=None, socket_options=None):
    """``socket.create_connection`` that resolves once and connects only to allowed hosts and addresses.

    ``host`` is the name the connection is made to: the allow-list is judged
    on it here, whatever any parser read from the URL before.
    """
    check_host(host)
    infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    refused = None
    error = None
    for family, socktype, proto, _, sockaddr in infos:
        address = sockaddr[0].split("%")[0]
        reason = refusal(address)
        if reason:
            refused = refused or (address, reason)
            continue
        sock = None
        try:
            sock = socket.socket(family, socktype, proto)
            for option in socket_options or ():
                sock.setsockopt(*option)
            if timeout is not _DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            error = exc
            if sock is not None:
                sock.close()
    if error is not None:
        raise error
    if refused is not None:
        address, reason = refused
        named = f"{host} resolves to {address}" if host != address else address
        raise SourceForbidden(f"The source address is refused: {named}, {reason}.")
    raise OSError(f"getaddrinfo returned no address for {host}")


class _GuardedConnectionMixin:
    def _new_conn(self):
        # urllib3's own _new_conn, with the guarded create_connection.
        try:
            return guarded_create_connection(
                (self._dns_host), self.port, self.timeout,
                source_address=self.source_address, socket_options=self.socket_options,
            )
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        except TimeoutError as exc:
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
            ) from exc
        except OSError as exc:
            raise NewConnectionError(self, f"Failed to establish a new connection: {exc}") from exc


class GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """A requests adapter whose every connection goes through the address rules."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": GuardedHTTPConnectionPool,
            "https": GuardedHTTPSConnectionPool,
        }


def guarded_session(user_agent="istore"):
    """A requests Session that only reaches allowed addresses, never via a proxy."""
    session = requests.Session()
    session.trust_env = False
    adapter = GuardedAdapter(pool_connections=16, pool_maxsize=16, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"User-Agent": user_agent, "Accept-Encoding": "identity", "Accept": "*/*"})
    return session
