"""Admin for campaigns (with the fill page), items, votes, and labeler quality with flags."""

from django.conf import settings
from django.contrib import admin
from django.db.models import Count, ExpressionWrapper, F, FloatField, Q
from django.urls import reverse
from django.utils.html import format_html

from core.admin import ReadOnlyAdmin
from labeling.models import CANT_TELL, Campaign, Item, LabelerQuality, Vote
from labeling.selectors import CLOSED


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "attribute", "active", "votes_required", "max_votes", "gold_rate", "item_count", "actions_"]
    list_filter = ["active", "attribute"]
    search_fields = ["name"]
    readonly_fields = ["created_by", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        # The question is fixed once asked: its items' votes and gold answers are values of this attribute.
        # The rule is fixed once anyone answered: decisions already taken were taken under it, and an open
        # item could otherwise hold more votes than a lowered max_votes allows.
        if obj is None:
            return self.readonly_fields
        rule = ["votes_required", "max_votes"] if Vote.objects.filter(item__campaign=obj).exists() else []
        return [*self.readonly_fields, "attribute", *rule]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(n_items=Count("items"))

    @admin.display(description="items", ordering="n_items")
    def item_count(self, obj):
        return obj.n_items

    @admin.display(description="")
    def actions_(self, obj):
        return format_html(
            '<a href="{}">Add pictures</a> · <a href="{}">Votes CSV</a>',
            reverse("labeling:fill", args=[obj.pk]),
            reverse("labeling:votes-csv", args=[obj.pk]),
        )

    def save_model(self, request, obj, form, change):
        if not change and obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["id", "campaign", "image_id", "status", "label", "vote_count", "top_count", "is_gold", "gold_label"]
    list_filter = ["status", "is_gold", "campaign"]
    list_select_related = ["campaign"]
    raw_id_fields = ["image"]
    readonly_fields = ["counts", "cant_tell", "vote_count", "top_count", "decided_at", "status", "label"]

    def get_readonly_fields(self, request, obj=None):
        # An existing item's votes answered this campaign's question about this picture, as a real or a gold
        # item: moving them to another campaign (other labels) or flipping gold would corrupt tally and scores.
        # A gold item's answer may be corrected; a real item has none to give.
        if obj is None:
            return self.readonly_fields
        return [*self.readonly_fields, "campaign", "image", "is_gold", *([] if obj.is_gold else ["gold_label"])]


@admin.register(Vote)
class VoteAdmin(ReadOnlyAdmin):
    """Votes come and go only through the vote service, which keeps the item's tally and consensus in step
    under the item's lock; a row deleted here would leave the tally counting a vote that no longer exists."""

    list_display = ["id", "item_id", "user", "label", "created_at", "undone_at", "ms_to_answer"]
    list_filter = ["item__campaign"]
    list_select_related = ["user"]
    search_fields = ["user__username"]


class FlaggedFilter(admin.SimpleListFilter):
    title = "flagged"
    parameter_name = "flagged"

    def lookups(self, request, model_admin):
        return [("yes", "Flagged"), ("no", "Not flagged")]

    def queryset(self, request, queryset):
        flagged = Q(gold_answered__gte=settings.LABELING_FLAG_MIN_GOLD, gold_smoothed__lt=settings.LABELING_FLAG_BELOW)
        if self.value() == "yes":
            return queryset.filter(flagged)
        if self.value() == "no":
            return queryset.exclude(flagged)
        return queryset


@admin.register(LabelerQuality)
class LabelerQualityAdmin(ReadOnlyAdmin):
    """Read-only: who labels how well. Flagged = enough gold answered and smoothed gold accuracy too low."""

    list_display = ["username", "votes", "gold", "gold_accuracy", "agreement", "flag"]
    list_filter = [FlaggedFilter]
    search_fields = ["username"]
    fields = ["username"]

    def get_queryset(self, request):
        # The definitions of labeling.selectors.labeler_quality, in SQL so the admin can sort and filter by them.
        live = Q(labeling_votes__undone_at__isnull=True)
        gold = live & Q(labeling_votes__item__is_gold=True)
        settled = (
            live
            & Q(labeling_votes__item__is_gold=False, labeling_votes__item__status__in=CLOSED)
            & ~Q(labeling_votes__label=CANT_TELL)
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                votes=Count("labeling_votes", filter=live),
                gold_answered=Count("labeling_votes", filter=gold),
                gold_correct=Count(
                    "labeling_votes", filter=gold & Q(labeling_votes__label=F("labeling_votes__item__gold_label"))
                ),
                compared=Count("labeling_votes", filter=settled),
                agreed=Count(
                    "labeling_votes", filter=settled & Q(labeling_votes__label=F("labeling_votes__item__label"))
                ),
            )
            .annotate(
                gold_smoothed=ExpressionWrapper(
                    (F("gold_correct") + 1.0) / (F("gold_answered") + 2.0), output_field=FloatField()
                ),
                agree_smoothed=ExpressionWrapper(
                    (F("agreed") + 1.0) / (F("compared") + 2.0), output_field=FloatField()
                ),
            )
            .filter(votes__gt=0)
        )

    @admin.display(ordering="votes")
    def votes(self, obj):
        return obj.votes

    @admin.display(description="gold correct/answered", ordering="gold_answered")
    def gold(self, obj):
        return f"{obj.gold_correct}/{obj.gold_answered}"

    @admin.display(description="gold accuracy (smoothed)", ordering="gold_smoothed")
    def gold_accuracy(self, obj):
        return f"{obj.gold_smoothed:.0%}"

    @admin.display(description="agreement (smoothed)", ordering="agree_smoothed")
    def agreement(self, obj):
        return f"{obj.agree_smoothed:.0%}"

    @admin.display(description="flag", boolean=True)
    def flag(self, obj):
        return obj.gold_answered >= settings.LABELING_FLAG_MIN_GOLD and obj.gold_smoothed < settings.LABELING_FLAG_BELOW
