"""The labeling app's own pages: service worker and manifest, the labeling screen's progress and way on,
campaigns done for one labeler, and the quality-per-week chart."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.models import Vote
from labeling.services import vote_record
from tests.labeling.conftest import CampaignFactory, ItemFactory


def give(user, item, label, at=None):
    return vote_record(user=user, item_id=item.pk, label=label, client_uuid=uuid.uuid4(), at=at)


@pytest.mark.django_db
def test_service_worker_is_served_under_label_with_its_shell_version_and_urls(client, settings):
    settings.LABELING_SHELL_VERSION = "abc123"
    response = client.get("/label/sw.js")  # no login needed: the browser re-checks it on its own
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert response["Service-Worker-Allowed"] == "/label/"
    body = response.content.decode()
    assert 'var VERSION = "abc123";' in body and "/static/js/labeling.js" in body
    assert "__SHELL" not in body
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]


@pytest.mark.django_db
def test_shell_version_follows_the_shell_when_not_set(client, settings):
    settings.LABELING_SHELL_VERSION = ""
    first = client.get("/label/sw.js").content.decode()
    assert 'var VERSION = "' in first and 'var VERSION = ""' not in first


@pytest.mark.django_db
def test_manifest_makes_the_labeling_screen_installable(client):
    data = client.get("/label/manifest.webmanifest").json()
    assert (data["start_url"], data["scope"], data["display"]) == ("/label/", "/label/", "standalone")
    assert {icon["sizes"] for icon in data["icons"]} == {"192x192", "512x512"}
    assert all(icon["src"].startswith("/static/img/icon-") for icon in data["icons"])


@pytest.mark.django_db
def test_campaign_list_says_done_for_this_labeler_when_they_answered_every_open_picture(client, labelers):
    me, other = labelers(2)
    mine = CampaignFactory(name="All answered")
    for item in [ItemFactory(campaign=mine) for _ in range(2)]:
        give(me, item, "Dealer")
    ItemFactory(campaign=CampaignFactory(name="Still work"))
    client.force_login(me)
    html = client.get("/label/").content.decode()
    done_card = html.split("All answered", 1)[1].split("</li>")[0]
    assert "Done for you" in done_card and "Start labeling" not in done_card
    work_card = html.split("Still work", 1)[1].split("</li>")[0]
    assert "Start labeling" in work_card and "1 left for you" in work_card
    client.force_login(other)
    assert "Done for you" not in client.get("/label/").content.decode()


@pytest.mark.django_db
def test_labeling_screen_shows_progress_key_hints_and_links_the_next_campaign_with_work(client, labeler):
    here = CampaignFactory(name="Here")
    ItemFactory(campaign=here, status="decided", label="Dealer")
    ItemFactory(campaign=here)
    ItemFactory(campaign=CampaignFactory(name="Empty one"), status="decided", label="Stock")
    ItemFactory(campaign=CampaignFactory(name="Has work"))
    client.force_login(labeler)
    html = client.get(f"/label/{here.pk}/").content.decode()
    assert "50% done · 1 of 2 pictures open" in html
    assert "Next: Has work" in html and "Empty one" not in html
    assert '<kbd class="lb-key" aria-hidden="true">1</kbd>' in html
    assert '<link rel="manifest" href="/label/manifest.webmanifest">' in html


@pytest.mark.django_db
def test_stats_page_charts_gold_accuracy_and_agreement_per_week_as_svg(client, labelers, django_assert_max_num_queries):
    me, a, b = labelers(3)
    campaign = CampaignFactory(votes_required=2, max_votes=3)
    two_weeks_ago = timezone.now() - timedelta(days=14)
    for at, my_answer in ((two_weeks_ago, "Stock"), (timezone.now(), "Dealer")):
        gold = ItemFactory(campaign=campaign, is_gold=True, gold_label="Dealer")
        give(me, gold, my_answer, at=at)
        real = ItemFactory(campaign=campaign)
        give(me, real, "Dealer", at=at)
        give(a, real, "Dealer", at=at)
    client.force_login(me)
    with django_assert_max_num_queries(12):
        html = client.get("/label/stats/").content.decode()
    chart = html.split('id="quality-weeks"')[1].split("</section>")[0]
    assert chart.count("<svg") == 1 and "<script" not in chart
    assert chart.count('<polyline class="lb-line-gold"') == 1 and chart.count('<polyline class="lb-line-agree"') == 1
    assert chart.count('<circle class="lb-line-gold"') == 2  # two weeks
    assert "0/1 gold" in chart and "1/1 gold" in chart and "1/1 settled" in chart
    assert Vote.objects.filter(user=b).count() == 0


@pytest.mark.django_db
def test_reviewers_can_chart_another_labeler_but_labelers_only_themselves(client, labelers, make_user):
    from core.roles import Role

    me, other = labelers(2)
    give(other, ItemFactory(campaign=CampaignFactory(), is_gold=True, gold_label="Dealer"), "Dealer")
    client.force_login(me)
    assert "1/1 gold" not in client.get(f"/label/stats/?labeler={other.pk}").content.decode()
    client.force_login(make_user("rev", Role.REVIEWER))
    html = client.get(f"/label/stats/?labeler={other.pk}").content.decode()
    assert f"{other.username}: quality per week" in html and "1/1 gold" in html


@pytest.mark.django_db
def test_cant_tell_shows_key_zero_even_with_more_than_nine_answers(client, labeler):
    colour = CampaignFactory(name="Colour", attribute="color")
    ItemFactory(campaign=colour)
    client.force_login(labeler)
    html = client.get(f"/label/{colour.pk}/").content.decode()
    cant = html.split('data-label="cant_tell"', 1)[1].split("</button>", 1)[0]
    assert '<kbd class="lb-key" aria-hidden="true">0</kbd>' in cant
    assert html.count('<kbd class="lb-key" aria-hidden="true">') == 9 + 1 + 2  # 1-9, 0, undo and skip
