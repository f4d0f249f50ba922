"""WSGI entry point: ``gunicorn istore_site.wsgi`` (see gunicorn.conf.py).

Django's application is wrapped in ``objects.replay.ReplayLayer``, which
answers repeated GETs of unchanged content without Django's request cycle
(its docstring says what a replay skips, and why that is safe).
"""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "istore_site.settings")

application = get_wsgi_application()

from objects.replay import ReplayLayer  # noqa: E402 - needs Django set up

application = ReplayLayer(application)
