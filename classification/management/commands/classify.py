"""manage.py classify URL-or-PATH…: classify now and print one JSON line per argument (the API's result)."""

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
        for target in targets:
            if target in by_url:
                outcome = by_url[target]
            else:
                path = Path(target)
                if not path.is_file():
                    raise CommandError(f"{target}: not a URL (scheme://…) nor a readable file")
                outcome = bytes_classify(data=path.read_bytes(), name=target, advertiser=advertiser)
            self.stdout.write(json.dumps(outcome.as_result(), sort_keys=False))
