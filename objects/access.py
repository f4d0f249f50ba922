"""
Who may read and write (§10).

Writes (POST, PUT, DELETE, verbs) need ``Authorization: Token <key>`` (Django
REST framework's tokens) unless ``ISTORE_ALLOW_ANONYMOUS_WRITES`` is on, and
even then only for clients on a loopback address: the switch is meant for the
local development run. Reads are public unless ``ISTORE_PUBLIC_READ=false``.
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


def check(request, write):
    """Raise NotAuthenticated unless the request may read (or write)."""
    if write:
        if settings.ISTORE_ALLOW_ANONYMOUS_WRITES and is_loopback(request):
            return
        if token_user(request) is None:
            raise NotAuthenticated(
                "Writes need a token: send 'Authorization: Token <key>' "
                "(create one with `python manage.py drf_create_token <user>` or in /_admin/)."
            )
    elif not settings.ISTORE_PUBLIC_READ and token_user(request) is None and staff_session_user(request) is None:
        raise NotAuthenticated("Reads need a token here (ISTORE_PUBLIC_READ=false): send 'Authorization: Token <key>'.")
