"""
Signed URLs: with ``ISTORE_URL_SIGNING_KEYS`` set, a processed read
(GET or HEAD with ``?apply=``) must carry a signature, so that only URLs the
operator's application wrote make istore spend CPU (thumbor's and imgproxy's
answer to anyone asking for every size of every image).

- ``sig`` is the last query parameter: the unpadded base64url HMAC-SHA256, under
  one of the keys, of the request target exactly as sent (the raw path and
  query, percent-escapes included) without its ``&sig=...``. Signing the raw
  bytes, not a parsed form, leaves no two readings of one URL.
- The first key signs, every key verifies: to rotate, put the new key first,
  keep the old one until the URLs signed with it are gone, then drop it.
- ``exp=<unix seconds>``, in the signed part, makes the URL expire.
- Missing or wrong: 403 ``bad_signature``; past ``exp``: 403
  ``signature_expired``. Every comparison is constant-time
  (``hmac.compare_digest``).
- A request with a valid token (``Authorization: Token``) needs no signature;
  reads without ``apply`` are not concerned.

``check(request)`` is called by the view before any source is opened;
``replayable(environ)`` by the replay layer, which answers only what passes
it and leaves anything else (a token, a bad or expired signature) to Django;
``shared_cache_seconds`` keeps nginx's cache from outliving ``exp``.
"""
import base64
import hashlib
import hmac
import time
from urllib.parse import parse_qs, quote, urlsplit

from django.conf import settings

from .errors import Forbidden

SIG = "&sig="


class BadSignature(Forbidden):
    code = "bad_signature"


class SignatureExpired(Forbidden):
    code = "signature_expired"


def enabled():
    return bool(settings.ISTORE_URL_SIGNING_KEYS)


def signature(text, key):
    """The unpadded base64url HMAC-SHA256 of ``text`` under ``key``."""
    mac = hmac.new(key.encode("utf-8"), text.encode("utf-8", "surrogateescape"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")


def sign(target, expires_in=None, now=None):
    """``target`` (a raw path and query, as it will be sent) signed with the first key;
    ``expires_in`` seconds adds ``exp`` first."""
    keys = settings.ISTORE_URL_SIGNING_KEYS
    if not keys:
        raise ValueError("ISTORE_URL_SIGNING_KEYS is not set: there is no key to sign with")
    if expires_in is not None:
        expires = int((time.time() if now is None else now) + expires_in)
        target += ("&" if "?" in target else "?") + f"exp={expires}"
    return target + ("&sig=" if "?" in target else "?sig=") + signature(target, keys[0])


def raw_target(meta):
    """The request target as the client sent it: gunicorn's ``RAW_URI`` (uWSGI's
    ``REQUEST_URI``), cut to path and query when absolute; else rebuilt from the
    decoded path."""
    target = meta.get("RAW_URI") or meta.get("REQUEST_URI")
    if target:
        if target.startswith("/"):
            return target
        parts = urlsplit(target)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    query = meta.get("QUERY_STRING", "")
    path = quote(meta.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "surrogateescape"),
                 safe="/:@!$&'()*+,;=~%")
    return path + (f"?{query}" if query else "")


def required(meta):
    """True when this request must be signed: signing is on, and it is a processed read."""
    if not enabled() or meta.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        return False
    query = meta.get("QUERY_STRING", "")
    return "apply" in query and "apply" in parse_qs(query, keep_blank_values=True)


def verify(target, now=None):
    """The ``exp`` of the raw ``target`` (None without one); ``BadSignature`` or
    ``SignatureExpired`` unless it is signed and current."""
    signed, sep, given = target.rpartition(SIG)
    if not sep or "&" in given or "?" not in signed:
        raise BadSignature("This processed read needs a signed URL: add sig=<signature> as the last query "
                           "parameter (see docs/processing.md, \"Signed URLs\"), or send a token.")
    if not any(hmac.compare_digest(signature(signed, key), given) for key in settings.ISTORE_URL_SIGNING_KEYS):
        raise BadSignature("The URL's signature does not match: sign the path and query exactly as sent, "
                           "without &sig=, with a current key.")
    expiry = parse_qs(signed.partition("?")[2], keep_blank_values=True).get("exp")
    if expiry is None:
        return None
    if len(expiry) != 1 or not expiry[0].isdigit():
        raise BadSignature("exp must appear once, as whole seconds since 1970 (UTC).")
    if int(expiry[0]) < (time.time() if now is None else now):
        raise SignatureExpired(f"This signed URL expired at {int(expiry[0])} (exp, seconds since 1970 UTC).")
    return int(expiry[0])


def check(request):
    """Raise a 403 ``ApiError`` unless the request needs no signature (signing off, not a
    processed read, or a valid token) or carries a valid, current one."""
    if not required(request.META):
        return
    from .access import token_user

    if token_user(request) is not None:
        return
    verify(raw_target(request.META))


def shared_cache_seconds(request, seconds):
    """How long a shared cache in front (nginx's) may keep this answer: ``seconds``, less
    for a signed URL that expires sooner, and 0 for a processed read a token opened
    without a signature (the cache would hand it to requests carrying neither)."""
    if seconds <= 0 or not required(request.META):
        return seconds
    try:
        expiry = verify(raw_target(request.META))
    except Forbidden:
        return 0
    return seconds if expiry is None else max(0, min(seconds, expiry - int(time.time())))


def replayable(environ):
    """True when the replay layer may answer this request as far as signing goes: no
    signature is needed, or it carries no token and a valid, current signature."""
    if not required(environ):
        return True
    if "HTTP_AUTHORIZATION" in environ:
        return False  # a token is Django's to check
    try:
        verify(raw_target(environ))
    except Forbidden:
        return False
    return True
