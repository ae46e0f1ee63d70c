"""manage.py export_dataset ATTRIBUTE [options]: build a training dataset now, in this process."""

import shutil
from datetime import datetime

from django.core.management.base import BaseCommand, CommandError

from datasets.export import (
    DEFAULT_MIN_SIZE,
    DEFAULT_PHASH_THRESHOLD,
    DEFAULT_TEST_FRACTION,
    ExportError,
    export_params_build,
    export_run,
)
from datasets.services import export_request


class Command(BaseCommand):
    help = "Export an attribute's ground truth as a folder-per-class zip (or a manifest) to the default storage."

    def add_arguments(self, parser):
        parser.add_argument("attribute", help="image_type, color, banner or position")
        parser.add_argument(
            "--sources", nargs="+", help="consensus staff_fix advertiser_fix adjudication (default all)"
        )
        since = parser.add_mutually_exclusive_group()
        since.add_argument("--since", help="only pictures with ground truth recorded after this date (YYYY-MM-DD)")
        since.add_argument("--since-last-export", action="store_true", help="only what came after the last export")
        parser.add_argument("--min-width", type=int, default=DEFAULT_MIN_SIZE)
        parser.add_argument("--min-height", type=int, default=DEFAULT_MIN_SIZE)
        parser.add_argument("--classes", nargs="+", help="only these classes")
        parser.add_argument("--test-fraction", type=float, default=DEFAULT_TEST_FRACTION)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--phash-threshold", type=int, default=DEFAULT_PHASH_THRESHOLD)
        parser.add_argument("--group-by-advertiser", action="store_true")
        parser.add_argument("--cap-per-class", type=int)
        parser.add_argument("--include-conflicting", action="store_true")
        parser.add_argument("--manifest-only", action="store_true", help="URLs and labels, no pictures")
        parser.add_argument("--output", help="also copy the result to this local path")

    def handle(self, *args, **o):
        try:
            since = datetime.fromisoformat(o["since"]) if o["since"] else None
            params = export_params_build(
                attribute=o["attribute"],
                sources=o["sources"],
                since=since,
                since_last_export=o["since_last_export"],
                min_width=o["min_width"],
                min_height=o["min_height"],
                classes=o["classes"],
                test_fraction=o["test_fraction"],
                seed=o["seed"],
                phash_threshold=o["phash_threshold"],
                group_by_advertiser=o["group_by_advertiser"],
                cap_per_class=o["cap_per_class"],
                include_conflicting=o["include_conflicting"],
            )
        except (ExportError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        export = export_request(params=params, manifest_only=o["manifest_only"], enqueue=False)
        export = export_run(export_id=export.pk)
        self.stdout.write(f"export #{export.pk}: {export.rows} pictures → {export.file.name}")
        for part, counts in export.counts.items():
            self.stdout.write(f"  {part}: " + ", ".join(f"{c} {n}" for c, n in counts.items()))
        if export.diff:
            d = export.diff
            self.stdout.write(f"  vs #{d['previous_id']}: +{d['added']} -{d['removed']} ~{d['relabelled']}")
        if o["output"]:
            with export.file.storage.open(export.file.name, "rb") as src, open(o["output"], "wb") as dst:
                shutil.copyfileobj(src, dst)
            self.stdout.write(f"  copied to {o['output']}")
