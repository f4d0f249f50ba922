"""
Who may read and write (§10).

Writes (POST, PUT, DELETE, verbs) need ``Authorization: Token <key>`` (Django
REST framework's tokens) unless ``ISTORE_ALLOW_ANONYMOUS_WRITES`` is on, and
even then only for clients on a loopback address: the switch is meant for the
local development run. Reads are public unless ``ISTORE_PUBLIC_READ=false``.

Two rules keep that development switch from being used by someone else:

- a token that is sent is always checked, so a wrong one is 401 even where
  anonymous writes are allowed (the developer learns at once that it is wrong);
- an anonymous write that a browser sends on behalf of another site is 403:
  a page elsewhere can POST a form or ``text/plain`` to ``localhost`` without
  a CORS preflight. Browsers name the page's origin in ``Origin`` (``null``
  for sandboxed and ``file:`` pages) and say ``Sec-Fetch-Site: cross-site``;
  either one, unless it is the server's own origin, refuses the write. curl
  and scripts send neither.
"""
import ipaddress

from django.conf import settings
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from .errors import ApiError

WRITE_METHODS = ("POST", "PUT", "DELETE", "PATCH")


class NotAuthenticated(ApiError):
    status, code = 401, "not_authenticated"

    def __init__(self, detail):
        super().__init__(detail, headers={"WWW-Authenticate": 'Token realm="istore"'})


def token_user(request):
    """The user of a valid token in the request, None when there is no token."""
    try:
        result = TokenAuthentication().authenticate(request)
    except AuthenticationFailed as exc:
        raise NotAuthenticated(f"{exc.detail} Send 'Authorization: Token <key>' with a valid key.") from None
    return result[0] if result else None


def staff_session_user(request):
    """The staff user logged in to the admin, for reads only.

    The API has no session middleware (objects.middleware.AdminOnlyMiddleware),
    so the admin's session cookie is read here, and only when a private store
    is read without a token: the admin's previews are plain <img> requests.
    Writes never accept a session (they would need CSRF protection).
    """
    cookie = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if not cookie:
        return None
    from importlib import import_module

    from django.contrib.auth import get_user

    request.session = import_module(settings.SESSION_ENGINE).SessionStore(cookie)
    user = get_user(request)
    return user if user.is_authenticated and user.is_staff else None


def is_loopback(request):
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


class CrossSiteWrite(ApiError):
    status, code = 403, "cross_site_write"


def from_another_site(request):
    """True when a browser sent this request for a page of another origin than istore's own."""
    if request.META.get("HTTP_SEC_FETCH_SITE", "").strip().lower() == "cross-site":
        return True
    origin = request.META.get("HTTP_ORIGIN")
    if origin is None:
        return False
    try:
        own = f"{request.scheme}://{request.get_host()}"
    except Exception:  # noqa: BLE001 - a Host Django refuses is no origin of ours
        return True
    return origin.strip().lower() != own.lower()


def anonymous_write_allowed(request):
    """True when a write without credentials may go through (the S3 protocol asks this too): anonymous
    writes are on and the client is on loopback. A browser's write from another site is CrossSiteWrite."""
    if not (settings.ISTORE_ALLOW_ANONYMOUS_WRITES and is_loopback(request)):
        return False
    if from_another_site(request):
        raise CrossSiteWrite(
            "An anonymous write sent by a browser from another site is refused: a page elsewhere "
            "must not write to this development server. Send a token, or write from this origin."
        )
    return True


def check(request, write):
    """Raise NotAuthenticated unless the request may read (or write); return
    the writing user for a write with a token (None for an anonymous one)."""
    if write:
        if "HTTP_AUTHORIZATION" not in request.META and anonymous_write_allowed(request):
            return None
        user = token_user(request)
        if user is None:
            raise NotAuthenticated(
                "Writes need a token: send 'Authorization: Token <key>' "
                "(create one with `python manage.py drf_create_token <user>` or in /_admin/)."
            )
        return user
    if not settings.ISTORE_PUBLIC_READ and token_user(request) is None and staff_session_user(request) is None:
        raise NotAuthenticated("Reads need a token here (ISTORE_PUBLIC_READ=false): send 'Authorization: Token <key>'.")
    return None
