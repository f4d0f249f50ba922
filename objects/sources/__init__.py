"""
Source resolvers: one per URL scheme, found by ``open_source`` (§1).

A key that embeds ``<scheme>://...`` gets its bytes from the resolver
registered for that scheme: ``http``/``https`` (``http/``, through the
address rules of ``guard.py`` and the shared cache), ``file`` (``file.py``,
confined to ``ISTORE_FILE_ROOTS``) and ``self`` (``self.py``, another key of
this istore). Any other scheme is 400, naming it. A new scheme (``s3://``) is
one module with a ``Resolver`` subclass, added to ``BUILTIN`` or passed to
``register``; writes of keys with other schemes, or with URLs their
resolver refuses, are refused through ``check_scheme``.
"""
from .. import keys
from ..errors import BadRequest
from .base import Body, Context, Resolver
from .file import FileResolver
from .http import HttpResolver
from .self import SelfResolver

__all__ = ["Body", "Context", "Resolver", "register", "resolver_for", "check_scheme", "open_source", "fingerprint",
           "schemes"]

_REGISTRY = {}


class UnknownScheme(BadRequest):
    code = "unknown_scheme"


def register(resolver):
    """Register a Resolver instance for each of its schemes."""
    for scheme in resolver.schemes:
        _REGISTRY[scheme] = resolver
    return resolver


def schemes():
    return frozenset(_REGISTRY)


def resolver_for(scheme):
    try:
        return _REGISTRY[scheme]
    except KeyError:
        raise UnknownScheme(
            f"The key embeds a source with the scheme {scheme!r}, which istore cannot fetch; "
            f"supported schemes: {', '.join(sorted(_REGISTRY))}."
        ) from None


def check_scheme(key):
    """Raise BadRequest when ``key`` embeds a source istore cannot fetch (so such a key is
    refused when it is written, not only when it is read): a scheme it does not know, or a
    URL its resolver refuses (an http URL that URL parsers would read differently); return
    the parsed key."""
    parsed = keys.parse_key(key)
    if parsed.scheme is not None:
        resolver_for(parsed.scheme).check(parsed.source)
    return parsed


def open_source(url, context):
    """Open the source ``url`` (as written in a key) and return its Body."""
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise BadRequest(f"{url!r} is not a source URL (<scheme>://...).", code="invalid_source_url")
    return resolver_for(scheme).open(url, context)


def fingerprint(url):
    """The resolver's ``fingerprint`` of the source ``url``: see ``Resolver.fingerprint``."""
    scheme, sep, _ = url.partition("://")
    resolver = _REGISTRY.get(scheme) if sep else None
    return resolver.fingerprint(url) if resolver is not None else None


BUILTIN = (HttpResolver(), FileResolver(), SelfResolver())
for _resolver in BUILTIN:
    register(_resolver)
