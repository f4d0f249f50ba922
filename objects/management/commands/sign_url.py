"""
``manage.py sign_url '/a/b.jpg?apply=resize&w=320' [--expires SECONDS]``: print
the path signed with the first key of ``ISTORE_URL_SIGNING_KEYS``.

The argument is the path and query exactly as they will be sent (percent-escapes
included); ``--expires`` adds ``exp`` (now + SECONDS) before signing. See
``objects.signing`` and docs/processing.md, "Signed URLs".
"""
from django.core.management.base import BaseCommand, CommandError

from objects import signing


class Command(BaseCommand):
    help = "Print a path and query signed with ISTORE_URL_SIGNING_KEYS (sig= last, exp= with --expires)."

    def add_arguments(self, parser):
        parser.add_argument("path", help="the path and query as they will be sent, e.g. '/a/b.jpg?apply=resize&w=320'")
        parser.add_argument("--expires", type=int, metavar="SECONDS", help="the URL expires SECONDS from now")

    def handle(self, path, expires, **options):
        if not path.startswith("/"):
            raise CommandError(f"{path!r} is not a path: it must start with '/' (the path and query, no host)")
        if expires is not None and expires <= 0:
            raise CommandError("--expires must be a positive number of seconds")
        if "&sig=" in path or "?sig=" in path:
            raise CommandError(f"{path!r} is signed already (it has sig=)")
        try:
            self.stdout.write(signing.sign(path, expires))
        except ValueError as exc:
            raise CommandError(str(exc)) from None
