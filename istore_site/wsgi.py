"""WSGI entry point: ``gunicorn istore_site.wsgi`` (see gunicorn.conf.py).

Django's application is wrapped in ``objects.replay.ReplayLayer``, which
answers repeated GETs of unchanged content without Django's request cycle
(its docstring says what a replay skips, and why that is safe), and requests
on the S3 listener (``ISTORE_S3_BIND``) go past it to the S3 app
(``s3.listener.ListenerRouter``).
"""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "istore_site.settings")

application = get_wsgi_application()

from objects.replay import ReplayLayer  # noqa: E402 - needs Django set up
from s3.listener import ListenerRouter  # noqa: E402

application = ListenerRouter(ReplayLayer(application), application)
