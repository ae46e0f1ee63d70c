"""manage.py train_model: search builtin-classifier parameters on an export, or promote a candidate."""

from django.core.management.base import BaseCommand, CommandError

from classification.models import ModelVersion
from classification.promotion import model_promote
from classification.reclassify import outdated_image_ids, reclassify_chunk
from datasets.models import DatasetExport
from datasets.services import search_request
from datasets.training import TrainingError, search_run


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.3f}"


class Command(BaseCommand):
    help = (
        "train_model --export ID [--tries 8] [--keep 4]: try parameter settings on the export's train split and "
        "store the best as candidates evaluated on its test split. train_model --promote NAME: make it active."
    )

    def add_arguments(self, parser):
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument("--export", type=int, dest="export_id")
        action.add_argument("--promote", metavar="NAME")
        parser.add_argument("--tries", type=int, default=8, help="parameter settings to try (at least 4)")
        parser.add_argument("--keep", type=int, default=4, help="candidates to keep")
        parser.add_argument(
            "--reclassify-now", action="store_true", help="with --promote: refresh old predictions here, not in workers"
        )

    def handle(self, *args, export_id, promote, tries, keep, reclassify_now, **options):
        if promote:
            return self._promote(promote, reclassify_now)
        export = DatasetExport.objects.filter(pk=export_id).first()
        if export is None:
            raise CommandError(f"no export #{export_id}")
        try:
            search = search_request(export=export, settings_count=tries, keep=keep, enqueue=False)
        except TrainingError as exc:
            raise CommandError(str(exc)) from None
        search = search_run(search_id=search.pk)
        self.stdout.write(f"search #{search.pk} on export #{export.pk}: {search.settings_count} settings")
        for row in search.results:
            if "active" in row:
                self.stdout.write(f"  active {row['active']}: test accuracy={_fmt(row['test']['accuracy'])}")
                continue
            test = f" test={_fmt(row['test']['accuracy'])}" if row["test"] else ""
            name = row["name"] or "(not kept)"
            self.stdout.write(f"  {name:<24} train={_fmt(row['train']['accuracy'])}{test} {row['params']}")

    def _promote(self, name: str, now: bool) -> None:
        version = ModelVersion.objects.filter(name=name).first()
        if version is None:
            raise CommandError(f"no model version named {name!r}")
        version = model_promote(model_version_id=version.pk, enqueue=not now)
        self.stdout.write(f"{version.name} is the active {version.backend} version")
        if now:
            seen = changed = last = 0
            while ids := outdated_image_ids(model_version=version, after=last):
                changed += reclassify_chunk(model_version_id=version.pk, image_ids=ids)
                seen, last = seen + len(ids), ids[-1]
            self.stdout.write(f"re-classified {seen} pictures, {changed} changed")
