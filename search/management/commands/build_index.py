"""
``python manage.py build_index DIR FIELD``: build (or rebuild) the approximate
index that ``POST DIR/_create_index {"similar": {"by": FIELD}}`` builds, with a
progress bar. Use it for large directories: a build over a million vectors
takes minutes, longer than an HTTP request should.
"""
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from objects.errors import ApiError
from objects import keys as object_keys

from search import ann


class Command(BaseCommand):
    help = "Build the approximate nearest-neighbour index of metadata[FIELD] under the directory DIR."

    def add_arguments(self, parser):
        parser.add_argument("dir", help="a directory key, ending in '/' (for example /path/vec/)")
        parser.add_argument("field", help="the metadata field that holds the vectors")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, dir, field, no_progress=False, **options):
        if not dir.endswith("/"):
            raise CommandError(f"DIR must be a directory, ending in '/': {dir!r}.")
        try:
            object_keys.validate_key(dir)
        except ApiError as exc:
            raise CommandError(exc.detail) from None
        bars = {}

        def progress(stage, done, total):
            if no_progress:
                return
            bar = bars.get(stage)
            if bar is not None and done < bar.n:  # the next vector length: a new bar
                bar.close()
                bar = None
            if bar is None:
                bar = bars[stage] = tqdm(total=total, desc=stage, unit="vec", file=self.stderr._out)
            bar.update(done - bar.n)

        try:
            built = ann.build(dir, field, progress=progress)
        except ApiError as exc:
            raise CommandError(exc.detail) from None
        finally:
            for bar in bars.values():
                bar.close()
        for dim, count in built.items():
            self.stdout.write(f"indexed {count} vectors of {dim} numbers under {dir} by {field}")
