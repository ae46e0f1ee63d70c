"""manage.py train_model: train learned heads for an attribute from ground truth (--attribute), search
builtin-classifier parameters on an export (--export), or promote a candidate (--promote)."""

import json

from django.core.management.base import BaseCommand, CommandError

from classification.models import ModelVersion
from classification.promotion import model_promote
from classification.reclassify import outdated_image_ids, reclassify_chunk
from classification.vocabulary import Attribute
from datasets.learning import MAX_CANDIDATES, MIN_CANDIDATES, TrainingError, training_run
from datasets.models import DatasetExport
from datasets.services import search_request, training_request
from datasets.training import TrainingError as SearchError
from datasets.training import search_run


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.3f}"


class Command(BaseCommand):
    help = (
        "train_model --attribute ATTR [--candidates 6] [--promote-if-better]: export the attribute's ground truth "
        "(grouped train/test split), train learned-head candidates, evaluate each beside the serving model and "
        "print one JSON line per candidate. train_model --export ID [--tries 8] [--keep 4]: builtin parameter "
        "search. train_model --promote NAME: make a version active."
    )

    def add_arguments(self, parser):
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument("--attribute", choices=Attribute.values)
        action.add_argument("--export", type=int, dest="export_id")
        action.add_argument("--promote", metavar="NAME")
        parser.add_argument(
            "--candidates", type=int, default=6, help=f"learned candidates ({MIN_CANDIDATES}-{MAX_CANDIDATES})"
        )
        parser.add_argument("--promote-if-better", action="store_true", help="promote the best if it beats the active")
        parser.add_argument("--from-export", type=int, help="with --attribute: train on this finished export instead")
        parser.add_argument("--tries", type=int, default=8, help="parameter settings to try (at least 4)")
        parser.add_argument("--keep", type=int, default=4, help="candidates to keep")
        parser.add_argument(
            "--reclassify-now", action="store_true", help="with promotion: refresh old predictions here, not in workers"
        )

    def handle(self, *args, attribute, export_id, promote, **options):
        if promote:
            return self._promote(promote, options["reclassify_now"])
        if attribute:
            return self._train(attribute, options)
        export = DatasetExport.objects.filter(pk=export_id).first()
        if export is None:
            raise CommandError(f"no export #{export_id}")
        try:
            search = search_request(export=export, settings_count=options["tries"], keep=options["keep"], enqueue=False)
        except SearchError as exc:
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

    def _train(self, attribute: str, options: dict) -> None:
        export = None
        if options["from_export"]:
            export = DatasetExport.objects.filter(pk=options["from_export"], attribute=attribute).first()
            if export is None:
                raise CommandError(f"no {attribute} export #{options['from_export']}")
        try:
            run = training_request(
                attribute=attribute,
                export=export,
                candidates=options["candidates"],
                promote_if_better=options["promote_if_better"],
                enqueue=False,
            )
            run = training_run(run_id=run.pk)
        except TrainingError as exc:
            raise CommandError(str(exc)) from None
        if run.error:
            raise CommandError(f"training run #{run.pk} failed: {run.error}")
        for row in run.results:
            self.stdout.write(json.dumps({"training_run": run.pk, "export": run.export_id, **row}))
        if run.promoted_id:
            self.stdout.write(json.dumps({"promoted": run.promoted.name, "training_run": run.pk}))
            if options["reclassify_now"]:
                self._reclassify(run.promoted)

    def _promote(self, name: str, now: bool) -> None:
        version = ModelVersion.objects.filter(name=name).first()
        if version is None:
            raise CommandError(f"no model version named {name!r}")
        version = model_promote(model_version_id=version.pk, enqueue=not now)
        self.stdout.write(f"{version.name} is the active {version.backend} version")
        if now:
            self._reclassify(version)

    def _reclassify(self, version: ModelVersion) -> None:
        seen = changed = last = 0
        while ids := outdated_image_ids(model_version=version, after=last):
            changed += reclassify_chunk(model_version_id=version.pk, image_ids=ids)
            seen, last = seen + len(ids), ids[-1]
        self.stdout.write(f"re-classified {seen} pictures, {changed} changed")
