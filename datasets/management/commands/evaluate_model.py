"""manage.py evaluate_model EXPORT_ID [--model NAME …]: model quality on an export's test split, now."""

from django.core.management.base import BaseCommand, CommandError

from classification.models import ModelVersion
from datasets.evaluation import EvaluationError, evaluation_run, evaluation_versions_default
from datasets.models import DatasetExport
from datasets.services import evaluation_request


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.3f}"


class Command(BaseCommand):
    help = "Evaluate model versions (default: the active ones and the candidates) on an export's test split."

    def add_arguments(self, parser):
        parser.add_argument("export_id", type=int)
        parser.add_argument("--model", dest="versions", nargs="+", help="model version names")
        parser.add_argument("--advertisers", type=int, default=10, help="show the N advertisers with lowest accuracy")

    def handle(self, *args, export_id, versions, advertisers, **options):
        export = DatasetExport.objects.filter(pk=export_id).first()
        if export is None:
            raise CommandError(f"no export #{export_id}")
        if versions:
            chosen = list(ModelVersion.objects.filter(name__in=versions))
            missing = set(versions) - {v.name for v in chosen}
            if missing:
                raise CommandError(f"unknown model version(s): {', '.join(sorted(missing))}")
        else:
            chosen = evaluation_versions_default()
        try:
            evaluations = evaluation_request(export=export, model_versions=chosen, enqueue=False)
        except EvaluationError as exc:
            raise CommandError(str(exc)) from None
        results = evaluation_run(evaluation_ids=[e.pk for e in evaluations])
        for evaluation in sorted(results, key=lambda e: -(e.metrics.get("accuracy") or 0)):
            m = evaluation.metrics
            version = evaluation.model_version
            self.stdout.write(
                f"{version.name} ({version.status}): n={m['n']} accuracy={_fmt(m['accuracy'])} "
                f"balanced={_fmt(m['balanced_accuracy'])}"
            )
            for label, c in m["classes"].items():
                self.stdout.write(
                    f"  {label:<12} precision={_fmt(c['precision'])} recall={_fmt(c['recall'])} support={c['support']}"
                )
            labels = m["confusion"]["labels"]
            self.stdout.write("  confusion (rows truth, columns model): " + " ".join(labels))
            for label, row in zip(labels, m["confusion"]["matrix"], strict=True):
                self.stdout.write(f"    {label:<12} " + " ".join(f"{n:>5}" for n in row))
            worst = sorted(m["advertisers"].items(), key=lambda kv: (kv[1]["accuracy"], kv[0]))[:advertisers]
            for slug, a in worst:
                self.stdout.write(f"  advertiser {slug}: accuracy={_fmt(a['accuracy'])} n={a['n']}")
