"""WSGI entry point: ``gunicorn istore_site.wsgi`` (see gunicorn.conf.py)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "istore_site.settings")

application = get_wsgi_application()
