"""Forms of the /datasets/ and /models/ pages; they validate through the same builders as the API."""

from datetime import datetime, time

from django import forms
from django.utils import timezone

from classification.models import GroundTruth, ModelVersion
from classification.vocabulary import Attribute
from core.jobs import JobStatus
from datasets.export import (
    DEFAULT_MIN_SIZE,
    DEFAULT_PHASH_THRESHOLD,
    DEFAULT_TEST_FRACTION,
    SOURCE_PRECEDENCE,
    ExportError,
    export_params_build,
)
from datasets.models import DatasetExport


class ExportForm(forms.Form):
    SINCE_CHOICES = [("all", "All ground truth"), ("last", "Since the last export"), ("date", "Since a date")]

    attribute = forms.ChoiceField(choices=Attribute.choices)
    sources = forms.MultipleChoiceField(
        choices=[(s, GroundTruth.Source(s).label) for s in SOURCE_PRECEDENCE],
        initial=list(SOURCE_PRECEDENCE),
        widget=forms.CheckboxSelectMultiple,
    )
    since_mode = forms.ChoiceField(choices=SINCE_CHOICES, initial="all", widget=forms.RadioSelect, label="Since")
    since_date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="Date")
    classes = forms.CharField(required=False, help_text="Comma-separated; empty for every class", max_length=500)
    min_width = forms.IntegerField(min_value=0, initial=DEFAULT_MIN_SIZE)
    min_height = forms.IntegerField(min_value=0, initial=DEFAULT_MIN_SIZE)
    test_fraction = forms.FloatField(min_value=0, max_value=1, initial=DEFAULT_TEST_FRACTION)
    seed = forms.IntegerField(initial=0)
    phash_threshold = forms.IntegerField(
        min_value=0, initial=DEFAULT_PHASH_THRESHOLD, label="Near-duplicate threshold (bits)"
    )
    group_by_advertiser = forms.BooleanField(required=False, label="Keep each advertiser's pictures on one side")
    cap_per_class = forms.IntegerField(required=False, min_value=1, label="Cap per class")
    include_conflicting = forms.BooleanField(required=False, label="Include conflicting pictures")
    manifest_only = forms.BooleanField(required=False, label="Manifest only (URLs, no pictures)")

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        since = None
        if data["since_mode"] == "date":
            if not data.get("since_date"):
                self.add_error("since_date", "Pick a date, or choose another 'since'.")
                return data
            since = timezone.make_aware(datetime.combine(data["since_date"], time.min))
        classes = [c.strip() for c in (data.get("classes") or "").split(",") if c.strip()]
        try:
            data["params"] = export_params_build(
                attribute=data["attribute"],
                sources=data["sources"],
                since=since,
                since_last_export=data["since_mode"] == "last",
                min_width=data["min_width"],
                min_height=data["min_height"],
                classes=classes,
                test_fraction=data["test_fraction"],
                seed=data["seed"],
                phash_threshold=data["phash_threshold"],
                group_by_advertiser=data["group_by_advertiser"],
                cap_per_class=data.get("cap_per_class"),
                include_conflicting=data["include_conflicting"],
            )
        except ExportError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data


def _done_exports():
    return DatasetExport.objects.filter(status=JobStatus.DONE, manifest_only=False).order_by("-created_at")


class EvaluateForm(forms.Form):
    export = forms.ModelChoiceField(queryset=DatasetExport.objects.none(), help_text="Evaluated on its test split")
    versions = forms.ModelMultipleChoiceField(
        queryset=ModelVersion.objects.none(), widget=forms.CheckboxSelectMultiple, label="Model versions"
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["export"].queryset = _done_exports().filter(attribute__in=["image_type", "color"])
        self.fields["versions"].queryset = ModelVersion.objects.exclude(status=ModelVersion.Status.RETIRED)


class SearchForm(forms.Form):
    export = forms.ModelChoiceField(queryset=DatasetExport.objects.none(), help_text="Searched on its train split")
    settings_count = forms.IntegerField(min_value=4, max_value=32, initial=8, label="Settings to try")
    keep = forms.IntegerField(min_value=1, max_value=8, initial=4, label="Candidates to keep")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["export"].queryset = _done_exports().filter(attribute__in=["image_type", "color"])

    def clean(self):
        data = super().clean()
        if not self.errors and data["keep"] > data["settings_count"]:
            self.add_error("keep", "Keep at most as many candidates as settings tried.")
        return data


class ImportForm(forms.Form):
    attribute = forms.ChoiceField(choices=Attribute.choices)
    file = forms.FileField(
        label="Folder-per-class zip", help_text="<label>/<picture> or train|test/<label>/<picture>, as our exports"
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if not (upload.name or "").lower().endswith(".zip"):
            raise forms.ValidationError("Upload a .zip of one folder per class.")
        return upload


class TrainForm(forms.Form):
    attribute = forms.ChoiceField(choices=Attribute.choices, help_text="Trained on all of its ground truth")
    candidates = forms.IntegerField(min_value=4, max_value=8, initial=6, label="Candidates")
    promote_if_better = forms.BooleanField(
        required=False, initial=True, label="Make the best one active if it beats the active model on the test split"
    )
