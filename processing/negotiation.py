"""
``format=auto``: the output format from a request's ``Accept`` header.

A pure function of the header, so the web layer can say ``Vary: Accept`` and
the derivative cache can key one result per chosen format. The order is fixed,
not taken from the client's q-values: AVIF when the client lists
``image/avif``, else WebP when it lists ``image/webp``, else the source's own
format. A bare ``*/*`` or ``image/*`` picks nothing (every browser sends one,
whatever it can decode), and a type listed with ``q=0`` is refused, as
RFC 9110 says.

An animated source cannot stay animated as AVIF here (see
``processing.animation``: GIF and WebP animate), so the choice has two parts:
the format for a still source, and the one for an animated source, which is
WebP when the client takes it and the source's own format otherwise. Which
of the two applies is known only once the source's header is read; both are
fixed by the header alone, so the pair is what keys the cache.
"""
from dataclasses import dataclass

AUTO = "auto"


@dataclass(frozen=True)
class Negotiated:
    """The formats ``format=auto`` chose: Pillow names, or None for the source's own."""

    still: str | None
    animated: str | None


def accepted(accept):
    """The media types ``accept`` lists with a weight above 0, in lower case (ranges included)."""
    types = set()
    for part in (accept or "").split(","):
        media, *params = part.split(";")
        media = media.strip().lower()
        if not media:
            continue
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value.strip())
                except ValueError:
                    pass  # an unreadable weight is no weight: the type stays listed
        if weight > 0:
            types.add(media)
    return types


def negotiate(accept):
    """The ``Negotiated`` formats for a request whose ``Accept`` header is ``accept`` (may be None)."""
    types = accepted(accept)
    webp = "WEBP" if "image/webp" in types else None
    return Negotiated(still="AVIF" if "image/avif" in types else webp, animated=webp)
