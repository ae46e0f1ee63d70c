"""manage.py classify URL-or-PATH…: classify now and print one JSON line per argument (the API's result).

An argument that is neither a URL nor a readable file (a ``data:`` URL, a missing path) gets a JSON error line
``{"url": …, "error": "invalid_argument", "message": …}`` in its place and the batch goes on; the command
exits non-zero at the end when any argument was refused.
"""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from classification.services import bytes_classify, urls_classify


class Command(BaseCommand):
    help = "Classify pictures by URL or file path; prints one JSON object per line, as POST /api/v1/classify/."

    def add_arguments(self, parser):
        parser.add_argument("targets", nargs="+", metavar="URL-or-PATH")
        parser.add_argument("--advertiser", help="resolve values as this advertiser sees them")

    def handle(self, *args, targets, advertiser=None, **options):
        urls = [t for t in targets if "://" in t]
        by_url = dict(zip(urls, urls_classify(urls=urls, advertiser=advertiser), strict=True)) if urls else {}
        refused = 0
        for target in targets:
            if target in by_url:
                result = by_url[target].as_result()
            else:
                try:
                    data = Path(target).read_bytes()
                except (OSError, ValueError) as exc:  # missing, a directory, unreadable, a NUL in the name
                    refused += 1
                    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                    message = f"not a URL (scheme://…) nor a readable file: {reason}"
                    self.stdout.write(json.dumps({"url": target, "error": "invalid_argument", "message": message}))
                    continue
                result = bytes_classify(data=data, name=target, advertiser=advertiser).as_result()
            self.stdout.write(json.dumps(result, sort_keys=False))
        if refused:
            raise CommandError(f"{refused} of {len(targets)} arguments refused (see their JSON error lines)")
