"""manage.py import_dataset DIR --attribute ATTR: a labelled folder-per-class dataset becomes ground truth."""

import json
import sys

from django.core.management.base import BaseCommand, CommandError

from classification.vocabulary import Attribute
from datasets.importing import DatasetImportError, dataset_import, plan_read


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = width * done // max(total, 1)
    return f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


class Command(BaseCommand):
    help = (
        "import_dataset DIR --attribute ATTR: import DIR/<label>/* (or DIR/train|test/<label>/*) as ground truth "
        "with source 'import'. Unknown labels refuse the import; a picture met twice counts once."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory")
        parser.add_argument("--attribute", required=True, choices=Attribute.values)
        parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    def handle(self, *args, directory, attribute, no_progress, **options):
        try:
            plan = plan_read(directory=directory, attribute=attribute)
        except DatasetImportError as exc:
            raise CommandError(str(exc)) from None
        show = not no_progress and sys.stderr.isatty()

        def progress(done: int, total: int) -> None:
            if show and (done == total or done % 10 == 0):
                self.stderr.write(_bar(done, total), ending="\n" if done == total else "")

        report = dataset_import(plan=plan, reference=f"import_dataset:{directory}", on_progress=progress)
        self.stdout.write(json.dumps({"attribute": attribute, "directory": str(directory), **report.as_json()}))
