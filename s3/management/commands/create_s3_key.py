"""
``manage.py create_s3_key USERNAME [--access-key ID --secret-key SECRET]``:
give a user S3 credentials and print them, one per line::

    access_key=ISQ3M0V6...
    secret_key=Xy9...

Without ``--access-key``/``--secret-key`` both are made up (20 and 40
characters, as AWS's). An existing access key id is refused unless it
already belongs to that user, whose secret it then replaces.
"""
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from s3.models import Credential, new_access_key, new_secret_key


class Command(BaseCommand):
    help = "Create S3 credentials (an access key id and a secret) for a user and print them."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--access-key", help="The access key id to use (default: a new random one).")
        parser.add_argument("--secret-key", help="The secret to use (default: a new random one).")

    def handle(self, username, access_key=None, secret_key=None, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user {username!r}: create it first (manage.py createsuperuser, or the admin).")
        access_key = access_key or new_access_key()
        secret_key = secret_key or new_secret_key()
        # The access key id is a field of the Authorization header's Credential=ID/date/...
        if not 3 <= len(access_key) <= 128 or not access_key.isascii() or any(
                not c.isprintable() or c.isspace() or c in "/=," for c in access_key):
            raise CommandError("The access key must be 3 to 128 ASCII characters without spaces, '/', '=' or ','.")
        if not 8 <= len(secret_key) <= 128 or not secret_key.isascii() or any(
                not c.isprintable() or c.isspace() for c in secret_key):
            raise CommandError("The secret key must be 8 to 128 printable ASCII characters without spaces.")
        existing = Credential.objects.filter(access_key=access_key).first()
        if existing is not None and existing.user_id != user.id:
            raise CommandError(f"The access key {access_key!r} belongs to another user.")
        Credential.objects.update_or_create(access_key=access_key, defaults={"user": user, "secret_key": secret_key})
        self.stdout.write(f"access_key={access_key}\nsecret_key={secret_key}")
