#!/usr/bin/env python
"""Django's command-line utility for istore."""
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "istore_site.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A setting missing or wrong in the environment: say which, without a traceback.
        sys.exit(f"istore: {exc}")


if __name__ == "__main__":
    main()
