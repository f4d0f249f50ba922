"""``manage.py expand DIR VIDEO``: what ``POST DIR_expand {"video": VIDEO}`` does, with a progress bar."""
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from objects.errors import ApiError
from objects import expand, writing

from .. import Run, add_progress_argument, directory_prefix, positive_int

BATCH = 1000


class Command(BaseCommand):
    help = "Register one frame item per second of a video under a directory (the _expand verb)."

    def add_arguments(self, parser):
        parser.add_argument("directory", help="Directory for the frame items, e.g. /path/slice/")
        parser.add_argument("video", help="A key with uploaded content, or a path embedding a source URL")
        parser.add_argument("--every", type=positive_int, default=1, help="Seconds between frames (default 1)")
        add_progress_argument(parser)

    def handle(self, *args, **options):
        directory = directory_prefix(options["directory"], "DIR")
        try:
            video, every = expand.parse_request({"video": options["video"], "every": options["every"]})
            duration = expand.video_duration(video)
            entries = expand.frame_entries(directory, video, duration, every)
        except ApiError as exc:
            raise CommandError(exc.detail) from None
        run = Run(self, options, total=len(entries), unit="frame", desc="frames",
                  outcomes=("created", "updated"))
        try:
            with transaction.atomic():
                for start in range(0, len(entries), BATCH):
                    batch = entries[start:start + BATCH]
                    created, updated = writing.upsert_many(batch)
                    run.count("created", created)
                    run.count("updated", updated)
                    run.advance(len(batch))
        finally:
            run.close()
        self.stdout.write(f"{run.summary()} frame items under {directory} for {video} ({duration:.2f} s)")
