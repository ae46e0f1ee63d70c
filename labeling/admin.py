"""Admin for campaigns (with the fill page), items, votes, and labeler quality with flags (flag, unflag, and
what each flag changed)."""

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count, ExpressionWrapper, F, FloatField, Q
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from core.admin import ReadOnlyAdmin
from labeling.models import CANT_TELL, Campaign, FlagEvent, Item, LabelerQuality, LabelerStanding, Vote
from labeling.quality import labeler_flag, labeler_unflag
from labeling.selectors import CLOSED


@admin.register(Campaign)
class CampaignAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "attribute",
        "active",
        "rule",
        "votes_required",
        "max_votes",
        "gold_rate",
        "item_count",
        "actions_",
    ]
    list_filter = ["active", "attribute", "rule"]
    search_fields = ["name"]
    readonly_fields = ["created_by", "created_at"]

    def get_readonly_fields(self, request, obj=None):
        # The question is fixed once asked: its items' votes and gold answers are values of this attribute.
        # The rule is fixed once anyone answered: decisions already taken were taken under it, and an open
        # item could otherwise hold more votes than a lowered max_votes allows.
        if obj is None:
            return self.readonly_fields
        voted = Vote.objects.filter(item__campaign=obj).exists()
        rule = ["rule", "votes_required", "max_votes", "min_votes", "threshold"] if voted else []
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

    list_display = ["id", "item_id", "user", "label", "created_at", "undone_at", "ms_to_answer", "counted"]
    list_filter = ["item__campaign"]
    list_select_related = ["user", "user__labeling_standing"]
    search_fields = ["user__username"]

    @admin.display(boolean=True, description="counted")
    def counted(self, obj):
        """Kept but not counted while its labeler is flagged."""
        standing = getattr(obj.user, "labeling_standing", None)
        return obj.undone_at is None and (standing is None or standing.flagged_at is None)


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

    list_display = ["username", "votes", "gold", "gold_accuracy", "agreement", "flag", "counted"]
    list_filter = [FlaggedFilter]
    search_fields = ["username"]
    fields = ["username", "standing", "flag_history"]
    readonly_fields = ["standing", "flag_history"]
    actions = ["flag_labelers", "unflag_labelers"]

    @admin.display(description="votes count?", boolean=True)
    def counted(self, obj):
        """False while flagged (by gold or an admin): their votes are kept and excluded from consensus."""
        standing = getattr(obj, "labeling_standing", None)
        return standing is None or standing.flagged_at is None

    @admin.display(description="standing")
    def standing(self, obj):
        standing = LabelerStanding.objects.filter(pk=obj.pk).first()
        if standing is None or standing.flagged_at is None:
            return "Votes count."
        return format_html(
            "Flagged {} by {} ({}): votes kept, not counted.",
            standing.flagged_at.strftime("%Y-%m-%d %H:%M"),
            standing.get_flag_source_display(),
            standing.flag_reason or "no reason given",
        )

    @admin.display(description="what flags changed")
    def flag_history(self, obj):
        events = FlagEvent.objects.filter(user=obj).select_related("by")[:20]
        if not events:
            return "Never flagged."
        return format_html_join(
            "",
            "<p>{}</p>",
            ((_event_summary(event),) for event in events),
        )

    @admin.action(description="Flag: exclude their votes from consensus (reopens items that depended on them)")
    def flag_labelers(self, request, queryset):
        for user in queryset:
            event = labeler_flag(user=user, source=LabelerStanding.Source.ADMIN, by=request.user, reason="by an admin")
            if event is not None:
                self.message_user(request, f"{user.username}: {_event_text(event)}", messages.WARNING)

    @admin.action(description="Unflag: count their votes again")
    def unflag_labelers(self, request, queryset):
        for user in queryset:
            event = labeler_unflag(user=user, by=request.user, reason="by an admin")
            if event is not None:
                self.message_user(request, f"{user.username}: {_event_text(event)}", messages.SUCCESS)

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
            .select_related("labeling_standing")
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


def _event_text(event: FlagEvent) -> str:
    what = "flagged" if event.action == FlagEvent.Action.FLAG else "unflagged"
    moved = ", ".join(f"item {c['item']} {c['from']} → {c['to']}" for c in event.changes[:20])
    more = f" and {len(event.changes) - 20} more" if len(event.changes) > 20 else ""
    listed = f": {moved}{more}" if moved else ""
    return f"{what}; {event.votes} votes re-tallied, {len(event.changes)} items changed{listed}."


def _event_summary(event: FlagEvent):
    who = event.by.get_username() if event.by else event.get_source_display()
    return format_html(
        "{} · {} by {}{}: {}",
        event.at.strftime("%Y-%m-%d %H:%M"),
        event.get_action_display(),
        who,
        f" ({event.reason})" if event.reason else "",
        _event_text(event),
    )


@admin.register(FlagEvent)
class FlagEventAdmin(ReadOnlyAdmin):
    """Every flag and unflag with the items it reopened, decided or closed (links to the items)."""

    list_display = ["at", "user", "action", "source", "by", "votes", "n_changes", "changed_items"]
    list_filter = ["action", "source"]
    list_select_related = ["user", "by"]
    search_fields = ["user__username"]

    @admin.display(description="items changed")
    def n_changes(self, obj):
        return len(obj.changes)

    @admin.display(description="changes")
    def changed_items(self, obj):
        return format_html_join(
            ", ",
            '<a href="{}">item {}</a> {} → {}',
            (
                (reverse("admin:labeling_item_change", args=[c["item"]]), c["item"], c["from"], c["to"])
                for c in obj.changes[:50]
            ),
        )
