"""
``self`` sources: another path of this istore (§1).

``self://P?Q`` splits at the first raw ``?``; ``P`` is percent-decoded once
and is the key (relative to the key's directory; ``./`` is the same; a leading
``/`` makes it absolute), ``Q`` is the query applied to it
(``objects.keys.resolve_self``). The target is read through
``objects.reading.read`` one level deeper, which the caller hands in as
``context.read``: ``sources`` never imports ``reading``. So each level of
nesting is one more level of percent-encoding, and an ``apply`` travels to the
level that carries it. A target need not be registered: its bytes come from
its own uploaded content or embedded source.

Nesting deeper than ``ISTORE_MAX_SELF_DEPTH``, or a key met twice on one
request (a cycle), is 508.
"""
from django.conf import settings

from .. import keys
from ..errors import LoopDetected
from .base import Resolver

PREFIX = "self://"


class SelfResolver(Resolver):
    schemes = ("self",)

    def open(self, url, context):
        key, query = keys.resolve_self(context.dir, url[len(PREFIX):])
        depth = context.depth + 1
        limit = settings.ISTORE_MAX_SELF_DEPTH
        if depth > limit:
            raise LoopDetected(
                f"self:// sources nest more than ISTORE_MAX_SELF_DEPTH={limit} levels deep "
                f"(reading {key!r}).",
                code="self_too_deep",
            )
        chain = context.chain or (context.key,)
        if key in chain:
            raise LoopDetected(
                f"self:// sources form a cycle: {' -> '.join(chain + (key,))}.", code="self_cycle"
            )
        return context.read(key, query, depth, chain=chain + (key,))
