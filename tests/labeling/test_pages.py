"""The labeling pages: campaign list, labeling screen, guidelines, conflicts, stats, export, fill."""

import csv
import io
import uuid

import pytest

from classification.collections import Collection, collection_get, collection_register
from labeling.models import Item
from labeling.services import vote_record
from tests.labeling.conftest import CampaignFactory, ImageFactory, ItemFactory


def give(user, item, label):
    return vote_record(user=user, item_id=item.pk, label=label, client_uuid=uuid.uuid4())


@pytest.mark.django_db
def test_campaign_list_shows_progress_in_few_queries(client, labeler, make_items, django_assert_max_num_queries):
    for n in range(4):
        make_items(CampaignFactory(name=f"C{n}"), 3)
    client.force_login(labeler)
    with django_assert_max_num_queries(8):
        html = client.get("/label/").content.decode()
    assert html.count("Start labeling") == 4
    assert "0 open of" not in html


@pytest.mark.django_db
def test_labeling_screen_has_a_button_per_choice_and_cant_tell_with_names(client, labeler):
    campaign = CampaignFactory(attribute="banner", guidelines="# Banners\n\n<script>alert(1)</script> *text*")
    client.force_login(labeler)
    html = client.get(f"/label/{campaign.pk}/").content.decode()
    assert html.count("data-label=") == 3
    assert 'aria-label="Banner (key 1)"' in html and 'aria-label="Can&#x27;t tell (key 0)"' in html
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<em>text</em>" in html
    assert '"swipe": true' in html  # two choices: swipe left/right
    assert "js/labeling.js" in html


@pytest.mark.django_db
def test_guidelines_show_settled_pictures_per_answer_and_never_gold(client, labeler, django_assert_max_num_queries):
    campaign = CampaignFactory()
    for _ in range(3):
        ItemFactory(campaign=campaign, status="decided", label="Stock")
    ItemFactory(campaign=campaign, status="adjudicated", label="Dealer")
    ItemFactory(campaign=campaign, status="open")
    gold = ItemFactory(campaign=campaign, is_gold=True, gold_label="Placeholder")
    client.force_login(labeler)
    with django_assert_max_num_queries(8):
        html = client.get(f"/label/{campaign.pk}/").content.decode()
    assert html.count('alt="Example: Stock') == 2 and html.count('alt="Example: Dealer') == 1
    assert 'alt="Example: Placeholder' not in html
    assert gold.image.thumbnail.url not in html


@pytest.mark.django_db
def test_pages_are_refused_to_users_without_a_labeling_role(client, advertiser_user, campaign):
    client.force_login(advertiser_user)
    assert client.get("/label/").status_code == 403
    assert client.get(f"/label/{campaign.pk}/").status_code == 403
    assert client.get("/label/conflicts/").status_code == 403


@pytest.mark.django_db
def test_conflicts_page_shows_distribution_and_one_tap_adjudicates(client, reviewer, labelers, labeler):
    campaign = CampaignFactory(votes_required=2, max_votes=3)
    items = [ItemFactory(campaign=campaign) for _ in range(3)]
    a, b, c = labelers(3)
    for item in items:
        give(a, item, "Dealer")
        give(b, item, "Stock")
        give(c, item, "Placeholder")
    client.force_login(labeler)
    assert client.get("/label/conflicts/").status_code == 403
    client.force_login(reviewer)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        html = client.get("/label/conflicts/").content.decode()
    assert len(queries) <= 10
    assert html.count('class="card lb-conflict"') == 3
    response = client.post(f"/label/conflicts/{items[0].pk}/", {"label": "Stock"})
    assert response.status_code == 302
    items[0].refresh_from_db()
    assert (items[0].status, items[0].label) == ("adjudicated", "Stock")
    assert client.get("/label/conflicts/").content.decode().count('class="card lb-conflict"') == 2


@pytest.mark.django_db
def test_stats_page_shows_my_figures_leaderboard_and_chart(client, labelers, django_assert_max_num_queries):
    campaign = CampaignFactory(votes_required=2, max_votes=3)
    me, other = labelers(2)
    item = ItemFactory(campaign=campaign)
    give(me, item, "Dealer")
    give(other, item, "Dealer")
    ItemFactory(campaign=campaign)
    client.force_login(me)
    with django_assert_max_num_queries(10):
        html = client.get("/label/stats/").content.decode()
    assert '<dd id="stat-today">1</dd>' in html and '<dd id="stat-total">1</dd>' in html
    assert 'class="lb-stack" role="img"' in html and 'class="decided" style="width: 50.0%"' in html
    assert "2.0 votes per decided item" in html
    assert html.count("<tr") >= 3  # header + two labelers


@pytest.mark.django_db
def test_votes_export_is_task_worker_label_csv_without_gold_or_cant_tell(client, reviewer, labelers):
    campaign = CampaignFactory()
    a, b = labelers(2)
    item = ItemFactory(campaign=campaign)
    give(a, item, "Dealer")
    give(b, item, "cant_tell")
    give(a, ItemFactory(campaign=campaign, is_gold=True, gold_label="Stock"), "Stock")
    client.force_login(reviewer)
    response = client.get(f"/label/{campaign.pk}/votes.csv")
    assert response["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows == [["task", "worker", "label"], [str(item.pk), str(a.pk), "Dealer"]]


@pytest.fixture
def advertisers():
    """A registered advertiser collection, as the sitemaps app would provide; restored afterwards."""
    previous = collection_get("advertiser")
    pictures: dict[str, list[int]] = {}
    collection_register(
        Collection(
            kind="advertiser",
            image_ids=lambda slug: pictures.get(slug, []),
            keys_for=lambda ids: {},
            choices=lambda: [(slug, slug.title()) for slug in pictures],
        )
    )
    yield pictures
    if previous is not None:
        collection_register(previous)
    else:
        from classification import collections

        collections._registry.pop("advertiser", None)


@pytest.fixture
def no_advertisers():
    from classification import collections

    previous = collections._registry.pop("advertiser", None)
    yield
    if previous is not None:
        collections._registry["advertiser"] = previous


@pytest.mark.django_db
def test_fill_page_hides_the_advertiser_option_when_no_collection_is_registered(client, admin_user, no_advertisers):
    campaign = CampaignFactory()
    client.force_login(admin_user)
    html = client.get(f"/label/{campaign.pk}/fill/").content.decode()
    assert 'value="advertiser"' not in html
    assert "no advertiser collection is registered" in html
    response = client.post(f"/label/{campaign.pk}/fill/", {"source": "advertiser", "advertiser": "x"})
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()


@pytest.mark.django_db
def test_fill_page_adds_an_advertisers_pictures_once(client, admin_user, advertisers):
    campaign = CampaignFactory()
    images = ImageFactory.create_batch(3)
    advertisers["acme"] = [i.pk for i in images]
    client.force_login(admin_user)
    assert 'value="advertiser"' in client.get(f"/label/{campaign.pk}/fill/").content.decode()
    for _ in range(2):
        response = client.post(
            f"/label/{campaign.pk}/fill/", {"source": "advertiser", "advertiser": "acme"}, follow=True
        )
    assert "0 picture(s) added, 3 already in the campaign" in response.content.decode()
    assert Item.objects.filter(campaign=campaign).count() == 3


@pytest.mark.django_db
def test_fill_page_adds_gold_with_a_known_answer(client, admin_user, advertisers):
    campaign = CampaignFactory()
    advertisers["acme"] = [i.pk for i in ImageFactory.create_batch(2)]
    client.force_login(admin_user)
    client.post(f"/label/{campaign.pk}/fill/", {"source": "advertiser", "advertiser": "acme", "gold_label": "Stock"})
    assert list(Item.objects.values_list("is_gold", "gold_label")) == [(True, "Stock"), (True, "Stock")]


@pytest.mark.django_db
def test_fill_page_is_for_admins_only(client, reviewer, campaign):
    client.force_login(reviewer)
    assert client.get(f"/label/{campaign.pk}/fill/").status_code == 403


@pytest.mark.django_db
def test_admin_pages_for_labeling_render(client, admin_user, labelers):
    campaign = CampaignFactory()
    item = ItemFactory(campaign=campaign)
    give(labelers(1)[0], item, "Dealer")
    client.force_login(admin_user)
    for url in (
        "/admin/labeling/campaign/",
        f"/admin/labeling/campaign/{campaign.pk}/change/",
        "/admin/labeling/campaign/add/",
        "/admin/labeling/item/",
        f"/admin/labeling/item/{item.pk}/change/",
        "/admin/labeling/vote/",
        "/admin/labeling/labelerquality/",
    ):
        assert client.get(url).status_code == 200, url
    html = client.get("/admin/labeling/campaign/").content.decode()
    assert f"/label/{campaign.pk}/fill/" in html and f"/label/{campaign.pk}/votes.csv" in html


@pytest.mark.django_db
def test_labeling_screen_sets_the_csrf_cookie_its_script_needs(client, labeler, campaign):
    client.force_login(labeler)
    response = client.get(f"/label/{campaign.pk}/")
    assert "csrftoken" in response.cookies


@pytest.mark.django_db
def test_admin_fixes_the_consensus_rule_once_anyone_voted(admin_user, labeler, rf):
    from django.contrib.admin.sites import site

    from labeling.models import Campaign

    model_admin = site._registry[Campaign]
    request = rf.get("/admin/")
    request.user = admin_user
    campaign = CampaignFactory()
    item = ItemFactory(campaign=campaign)
    assert "max_votes" not in model_admin.get_readonly_fields(request, campaign)
    give(labeler, item, "Dealer")
    readonly = model_admin.get_readonly_fields(request, campaign)
    assert {"attribute", "votes_required", "max_votes"} <= set(readonly)
