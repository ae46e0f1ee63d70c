"""manage.py classify_bucket PREFIX: backfill — classify every object under PREFIX in our bucket, with a
progress bar, then print what was classified, known already or refused, and the backends' usage and cost."""

from collections import Counter

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from classification.bucket import BucketRefused, ObjectRef, bucket_name, keys_list, object_classify
from classification.labels import usage_report

BAR = 30


class Command(BaseCommand):
    help = "Classify every picture under PREFIX in the media bucket (objects already known are not re-classified)."

    def add_arguments(self, parser):
        parser.add_argument("prefix", help='a key prefix, e.g. "uploads/2026/" ("" for the whole bucket)')
        parser.add_argument("--limit", type=int, default=None, help="stop after this many objects")

    def handle(self, *args, prefix: str, limit: int | None = None, **options):
        try:
            keys = list(keys_list(prefix=prefix))
        except BucketRefused as exc:
            raise CommandError(str(exc)) from exc
        keys = keys[:limit] if limit is not None else keys
        bucket, started, counts = bucket_name(), timezone.now(), Counter()
        image_ids = []
        for done, key in enumerate(keys, start=1):
            uri = ObjectRef(bucket=bucket, key=key).uri
            try:
                outcome = object_classify(uri=uri)
            except BucketRefused as exc:
                counts[f"refused ({exc.code})"] += 1
            else:
                if outcome.error:
                    counts[f"refused ({outcome.error})"] += 1
                else:
                    counts["known already" if outcome.cached else "classified"] += 1
                    image_ids.append(outcome.image_id)
            self._progress(done, len(keys))
        if keys:
            self.stderr.write("")
        summary = ", ".join(f"{n} {what}" for what, n in sorted(counts.items())) or "nothing"
        self.stdout.write(f"{len(keys)} objects under {prefix!r}: {summary}")
        self.stdout.write(usage_report(image_ids=image_ids, since=started).line())

    def _progress(self, done: int, total: int) -> None:
        filled = BAR * done // total
        self.stderr.write(f"\r[{'#' * filled}{'.' * (BAR - filled)}] {done}/{total}", ending="")
        self.stderr.flush()
