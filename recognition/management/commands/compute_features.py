"""
``manage.py compute_features [DIR] [--again]``: compute the features of the
pictures already in a store, with a progress bar.

It goes through the items under DIR (default ``/``) that may be pictures
(uploads typed ``image/*``, keys that embed a source) and have no features
from this version of the model yet, in key order, and stores each one's
features as the background computation would. Interrupted, it resumes where
it stopped: what is done is skipped. ``--again`` recomputes everything.
A source that fails (unreachable, 5xx) is reported and left for a later run.
"""
from django.core.management.base import BaseCommand, CommandError

from objects.errors import ApiError
from objects.management import Run, add_progress_argument, directory_prefix
from processing import features

from ... import store
from ...models import Features


class Command(BaseCommand):
    help = "Compute the built-in image features of the items under a directory (resumable)."

    def add_arguments(self, parser):
        parser.add_argument("directory", nargs="?", default="/", help="a directory, e.g. /photos/ (default /)")
        parser.add_argument("--again", action="store_true", help="recompute items that already have features")
        add_progress_argument(parser)

    def handle(self, *args, **options):
        prefix = directory_prefix(options["directory"], "DIR")
        todo = store.candidates(prefix)
        if not options["again"]:
            todo = todo.exclude(id__in=Features.objects.filter(version=features.VERSION).values("item_id"))
        run = Run(self, options, total=todo.count(), unit="item", desc="features",
                  outcomes=("computed", "not pictures", "failed"))
        last = None
        try:
            while True:
                batch = list((todo if last is None else todo.filter(key__gt=last)).order_by("key")[:200])
                if not batch:
                    break
                for item in batch:
                    last = item.key
                    try:
                        stored = store.refresh(item)
                    except ApiError as error:
                        run.count("failed")
                        run.problem(f"{item.key}: {error.code}: {error.detail}")
                    else:
                        run.count("not pictures" if stored is not None and stored.error else "computed")
                    run.advance()
        finally:
            run.close()
        if options.get("verbosity", 1):
            self.stdout.write(f"{prefix}: {run.summary()}")
        if run.counts["failed"]:
            raise CommandError(f"{run.counts['failed']} items failed (their sources could not be read); "
                               "run the same command again later: it does only what is missing.")
