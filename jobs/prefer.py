"""
The ``Prefer`` request header (RFC 7240) as far as verbs use it:
``respond-async`` (run the verb as a job and answer 202 at once) and
``wait=SECONDS`` (with ``respond-async``: answer the result after all if the
job finishes within that time). Other preferences (``return=``,
``handling=``, ...) are ignored, as the RFC asks of preferences a server does
not support; a malformed ``respond-async`` or ``wait`` is 400
``invalid_prefer``, since the client asked for something and would not get it.
"""
import re
from dataclasses import dataclass

from objects.errors import BadRequest

TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
MAX_WAIT = 60


class InvalidPrefer(BadRequest):
    code = "invalid_prefer"


@dataclass(frozen=True)
class Preferences:
    respond_async: bool = False
    wait: float = 0


def parse(header):
    """The Preferences a ``Prefer`` header value asks for; InvalidPrefer when it is malformed."""
    respond_async, wait = False, 0
    for preference in filter(None, (part.strip() for part in (header or "").split(","))):
        name, _, value = preference.split(";", 1)[0].partition("=")
        name, value = name.strip().lower(), value.strip().strip('"')
        if not TOKEN.match(name):
            raise InvalidPrefer(f"{preference!r} is not a preference: write 'Prefer: respond-async' "
                                "(RFC 7240), optionally with ', wait=SECONDS'.")
        if name == "respond-async":
            if value or "=" in preference.split(";", 1)[0]:
                raise InvalidPrefer(f"respond-async takes no value, not {preference!r}: write 'Prefer: respond-async'.")
            respond_async = True
        elif name == "wait":
            if not re.fullmatch(r"\d{1,6}", value):
                raise InvalidPrefer(f"wait must be a whole number of seconds, not {value!r}: "
                                    "e.g. 'Prefer: respond-async, wait=10'.")
            wait = min(int(value), MAX_WAIT)
    return Preferences(respond_async, wait)
