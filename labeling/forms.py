"""Forms of the labeling app. The fill form serves both the admin page and the API."""

import uuid

from django import forms
from django.core.files.storage import default_storage

from core.outbox import enqueue_on_commit
from labeling import fill
from labeling.models import Campaign


class FillForm(forms.Form):
    SOURCES = [
        ("advertiser", "An advertiser's pictures"),
        ("query", "A classification query"),
        ("least_sure", "The pictures the model is least sure of"),
        ("random", "A random sample"),
        ("zip", "An uploaded zip of pictures"),
    ]

    source = forms.ChoiceField(choices=SOURCES, widget=forms.RadioSelect)
    advertiser = forms.ChoiceField(required=False, help_text="For “an advertiser's pictures”.")
    value = forms.CharField(
        required=False, max_length=40, help_text="For a query: what the classifier said (e.g. Stock)."
    )
    score_below = forms.FloatField(
        required=False, min_value=0, max_value=1, help_text="For a query: classifier score below this."
    )
    count = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=100_000,
        help_text="How many pictures at most (random and least sure: required).",
    )
    seed = forms.IntegerField(required=False, help_text="Makes a random choice reproducible.")
    upload = forms.FileField(required=False, help_text="A .zip of pictures.")
    gold_label = forms.ChoiceField(
        required=False, label="Add as gold with answer", help_text="Leave empty for ordinary items."
    )

    def __init__(self, *args, campaign: Campaign, **kwargs):
        super().__init__(*args, **kwargs)
        self.campaign = campaign
        self.fields["gold_label"].choices = [("", "— not gold —"), *((c, c) for c in campaign.choices)]
        if fill.advertiser_fill_available():
            self.fields["advertiser"].choices = [("", "—"), *fill.advertiser_choices()]
        else:
            self.fields["source"].choices = [c for c in self.SOURCES if c[0] != "advertiser"]
            del self.fields["advertiser"]

    def clean(self):
        data = super().clean()
        source = data.get("source")
        if source == "advertiser" and not data.get("advertiser"):
            self.add_error("advertiser", "Choose an advertiser.")
        if source == "query" and not data.get("value") and data.get("score_below") is None:
            self.add_error("value", "Give the classifier's value, a score threshold, or both.")
        if source in ("random", "least_sure") and not data.get("count"):
            self.add_error("count", "How many pictures?")
        if source == "zip" and not data.get("upload"):
            self.add_error("upload", "Choose a zip file.")
        if source in ("query", "random", "least_sure") and data.get("gold_label"):
            self.add_error("gold_label", "Gold needs known answers: use an advertiser's pictures or a zip.")
        return data

    def run(self) -> tuple[str, fill.FillResult | None]:
        """Do the fill (a zip is queued for the worker). Returns a message and the result when synchronous.

        Raises fill.FillError with a message a person can act on."""
        data, campaign = self.cleaned_data, self.campaign
        source = data["source"]
        if source == "advertiser":
            result = fill.campaign_fill_advertiser(
                campaign=campaign,
                advertiser=data["advertiser"],
                limit=data.get("count"),
                seed=data.get("seed"),
                gold_label=data.get("gold_label") or "",
            )
        elif source == "query":
            result = fill.campaign_fill_query(
                campaign=campaign,
                value=data.get("value") or None,
                score_below=data.get("score_below"),
                limit=data.get("count"),
                seed=data.get("seed"),
            )
        elif source == "random":
            result = fill.campaign_fill_random(campaign=campaign, count=data["count"], seed=data.get("seed"))
        elif source == "least_sure":
            result = fill.campaign_fill_least_sure(campaign=campaign, count=data["count"])
        else:
            return self._queue_zip(), None
        return result.summary(), result

    def _queue_zip(self) -> str:
        from labeling.tasks import campaign_zip_ingest

        upload = self.cleaned_data["upload"]
        path = default_storage.save(f"labeling/uploads/{uuid.uuid4().hex}.zip", upload)
        campaign_id, gold_label = self.campaign.pk, self.cleaned_data.get("gold_label") or ""
        enqueue_on_commit(campaign_zip_ingest, campaign_id, path, gold_label)
        return (
            f"The zip ({upload.size // 1024} KB) is queued; its pictures appear in the campaign as they are processed."
        )
