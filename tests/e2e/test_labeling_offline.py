"""The labeling screen as a phone app, in Debian's Chromium: it opens offline after one visit (service
worker), labels the pictures kept on the phone and uploads when back, across a new version of the app; two
quick taps give one vote; the answers of one person are never uploaded as another's; a flagged labeler's
votes stop counting and what they decided reopens."""

import os
import re
from pathlib import Path

import pytest

from tests.labeling.conftest import CampaignFactory, ItemFactory

pytestmark = [pytest.mark.e2e]

URLS = "tests.e2e.test_labeling_phone"  # the project's URLs plus the thumbnails (DEBUG is off)
PHONE = {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True}
ARMED = "document.getElementById('lb-screen').dataset.armed === '1'"
PENDING = "n => document.getElementById('lb-screen').dataset.pending === String(n)"
# Where queued answers upload: several votes in one POST votes/batch/, an undo (or sign-out's upload) on votes/.
VOTES_API = re.compile(r"/api/v1/votes/(batch/)?$")
SHOTS = Path(os.environ.get("SPOTCHECK_SHOTS", Path(__file__).resolve().parents[2] / "var" / "shots"))


def _labeler(username: str):
    from django.contrib.auth.models import Group, User

    from core.roles import Role

    for role in Role.values:
        Group.objects.get_or_create(name=role)
    user = User.objects.create_user(username, password=f"pw-{username}-123")
    user.groups.add(Group.objects.get(name=Role.LABELER))
    return user


def _votes(user) -> dict[int, str]:
    from labeling.models import Vote

    return dict(Vote.objects.live().filter(user=user).values_list("item_id", "label"))


def _sign_in(page, base: str, username: str, next_url: str) -> None:
    page.goto(f"{base}/accounts/login/?next={next_url}")
    page.fill("#id_username", username)
    page.fill("#id_password", f"pw-{username}-123")
    page.get_by_role("button", name="Log in").tap()
    page.wait_for_load_state()


def _answer(page, label: str) -> int:
    """Tap an answer once the picture is armed; return the item answered."""
    page.wait_for_function(ARMED)
    item = int(page.locator("#lb-figure").get_attribute("data-item-id"))
    page.get_by_role("button", name=label, exact=False).first.tap()
    page.wait_for_function("id => document.getElementById('lb-figure').dataset.itemId !== String(id)", arg=item)
    return item


def _shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.mark.django_db(transaction=True)
def test_the_screen_opens_offline_after_one_visit_labels_kept_pictures_and_uploads_across_a_new_version(
    live_server, browser, settings
):
    settings.ROOT_URLCONF = URLS
    settings.LABELING_SHELL_VERSION = "v1"
    ann = _labeler("ann")
    campaign = CampaignFactory(name="Image type", guidelines="**Dealer** = a real photo.")
    ItemFactory.create_batch(6, campaign=campaign)
    ItemFactory.create_batch(2, campaign=CampaignFactory(name="Banners next", attribute="banner"))
    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.set_default_timeout(20000)
    _sign_in(page, live_server.url, "ann", f"/label/{campaign.pk}/")
    page.wait_for_function(ARMED)
    page.wait_for_function("navigator.serviceWorker.controller !== null")
    page.wait_for_function("Number(document.getElementById('lb-screen').dataset.kept) >= 6")  # pictures kept
    manifest = page.evaluate("fetch(document.querySelector('link[rel=manifest]').href).then(r => r.json())")
    assert manifest["start_url"] == "/label/" and manifest["display"] == "standalone"
    _shot(page, "labeling-360-online")

    context.set_offline(True)
    page.reload()  # served by the service worker: the page, its script and style, and the kept pictures
    page.wait_for_function(ARMED)
    assert page.evaluate("document.getElementById('lb-picture').naturalWidth") > 0
    given = {}
    for label in ("Dealer", "Stock"):
        given[_answer(page, label)] = label
    assert page.locator("#lb-sync").inner_text() == "2 answers waiting, 4 pictures left offline"
    assert page.locator("#lb-offline").is_visible()
    _shot(page, "labeling-360-offline")
    for label in ("Dealer", "Placeholder", "Dealer", "Stock"):
        given[_answer(page, label)] = label
    page.wait_for_function("document.getElementById('lb-screen').dataset.state === 'empty'")
    assert "6 answers upload when the connection is back" in page.locator("#lb-empty").inner_text()
    assert not page.get_by_role("button", name="Dealer", exact=False).first.is_visible()  # no dead buttons
    _shot(page, "labeling-360-offline-end")
    assert _votes(ann) == {}
    assert page.locator("#lb-counter").inner_text() == "6 this session"

    # A new version of the app arrives while the answers wait: they survive it and upload after it.
    settings.LABELING_SHELL_VERSION = "v2"
    page.route(VOTES_API, lambda route: route.abort())
    context.set_offline(False)
    page.reload()
    page.wait_for_function(
        "caches.keys().then(k => k.includes('spotcheck-shell-v2') && !k.includes('spotcheck-shell-v1'))"
    )
    assert page.locator("#lb-counter").inner_text() == "6 this session"  # the session counter survived reloads
    assert page.evaluate("document.getElementById('lb-screen').dataset.pending") == "6"
    page.unroute(VOTES_API)
    page.wait_for_function(PENDING, arg=0, timeout=45000)
    assert _votes(ann) == given
    page.wait_for_function("document.getElementById('lb-screen').dataset.state === 'empty'")
    assert page.get_by_role("link", name="Next: Banners next").is_visible()  # the end screen leads on
    _shot(page, "labeling-360-end")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    context.close()


@pytest.mark.django_db(transaction=True)
def test_two_quick_taps_give_one_vote_and_a_tap_on_a_picture_just_shown_is_ignored(live_server, browser, settings):
    settings.ROOT_URLCONF = URLS
    ann = _labeler("ann")
    campaign = CampaignFactory(name="Image type")
    ItemFactory.create_batch(6, campaign=campaign)
    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.set_default_timeout(20000)
    _sign_in(page, live_server.url, "ann", f"/label/{campaign.pk}/")
    page.wait_for_function(ARMED)
    first = int(page.locator("#lb-figure").get_attribute("data-item-id"))
    box = page.get_by_role("button", name="Stock", exact=False).first.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.touchscreen.tap(x, y)
    page.wait_for_timeout(80)  # a double tap: the second lands on the next picture, shown a blink ago
    page.touchscreen.tap(x, y)
    second = int(page.locator("#lb-figure").get_attribute("data-item-id"))
    assert second != first
    page.wait_for_function(PENDING, arg=0)
    page.wait_for_timeout(500)  # an ignored tap is dropped, not deferred
    assert _votes(ann) == {first: "Stock"}
    assert page.locator("#lb-figure").get_attribute("data-item-id") == str(second)

    # Touch events dispatched on the button itself, twice on the same armed picture: one answer.
    page.wait_for_function(ARMED)
    page.evaluate(
        """() => {
            const b = [...document.querySelectorAll('.lb-choice')].find(e => e.dataset.label === 'Dealer');
            for (let i = 0; i < 2; i++) {
                const t = new Touch({identifier: i, target: b, clientX: 10, clientY: 10});
                b.dispatchEvent(new TouchEvent('touchstart', {touches: [t], changedTouches: [t], bubbles: true}));
                b.dispatchEvent(new TouchEvent('touchend', {touches: [], changedTouches: [t], bubbles: true}));
                b.click();
            }
        }"""
    )
    page.wait_for_function(PENDING, arg=0)
    page.wait_for_timeout(300)
    assert _votes(ann) == {first: "Stock", second: "Dealer"}
    assert page.locator("#lb-counter").inner_text() == "2 this session"
    context.close()


@pytest.mark.django_db(transaction=True)
def test_the_next_person_on_the_phone_never_uploads_the_previous_ones_answers(live_server, browser, settings):
    settings.ROOT_URLCONF = URLS
    ann, bob = _labeler("ann"), _labeler("bob")
    campaign = CampaignFactory(name="Image type")
    ItemFactory.create_batch(10, campaign=campaign)
    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.set_default_timeout(20000)

    # Ann answers with the upload failing, then signs out: the sign-out uploads her answers, as hers.
    _sign_in(page, live_server.url, "ann", f"/label/{campaign.pk}/")
    page.route(VOTES_API, lambda route: route.abort())
    ann_given = {_answer(page, "Dealer"): "Dealer", _answer(page, "Stock"): "Stock"}
    assert page.evaluate("document.getElementById('lb-screen').dataset.pending") == "2"
    page.unroute(VOTES_API)
    page.get_by_role("button", name="Log out").tap()
    page.wait_for_url("**/accounts/login/**")
    assert _votes(ann) == ann_given
    assert page.evaluate("u => Object.keys(localStorage).filter(k => k.includes('.u' + u + '.'))", ann.pk) == []

    # Bob answers offline-like (upload failing) and signs out: warned, he first stays, then discards.
    _sign_in(page, live_server.url, "bob", f"/label/{campaign.pk}/")
    page.route(VOTES_API, lambda route: route.abort())
    _answer(page, "Placeholder")
    _answer(page, "Placeholder")
    messages = []

    def answer_dialog(accept: bool):
        def handle(dialog):
            messages.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        return handle

    page.once("dialog", answer_dialog(False))
    page.get_by_role("button", name="Log out").tap()
    page.wait_for_function("!document.querySelector('form.logout button').disabled")
    assert "2 answers have not reached the server" in messages[0]
    assert page.evaluate("document.getElementById('lb-screen').dataset.pending") == "2"  # kept: he stayed
    page.once("dialog", answer_dialog(True))
    page.get_by_role("button", name="Log out").tap()
    page.wait_for_url("**/accounts/login/**")
    page.unroute(VOTES_API)

    # An answer left by an older version under the shared key cannot be attributed: dropped, never uploaded.
    item = ItemFactory(campaign=campaign)
    page.evaluate(
        "id => localStorage.setItem('spotcheck.labeling.queue.v1', JSON.stringify([{kind: 'vote', item: id,"
        " label: 'Stock', uuid: crypto.randomUUID(), ms: 900}]))",
        item.pk,
    )
    _sign_in(page, live_server.url, "ann", f"/label/{campaign.pk}/")
    page.wait_for_function(ARMED)
    assert "could not be told apart by person" in page.locator("#lb-toast").inner_text()
    page.wait_for_timeout(1500)
    assert _votes(bob) == {}
    assert _votes(ann) == ann_given
    context.close()


@pytest.mark.django_db(transaction=True)
def test_a_flagged_labelers_votes_stop_counting_and_the_item_they_decided_reopens(live_server, browser, settings):
    import uuid

    from django.contrib.auth.models import Group, User

    from core.roles import Role
    from labeling.models import Item, Vote
    from labeling.services import vote_record

    settings.ROOT_URLCONF = URLS
    ann, other = _labeler("ann"), _labeler("other")
    boss = User.objects.create_user("boss", password="pw-boss-123", is_staff=True, is_superuser=True)
    boss.groups.add(Group.objects.get(name=Role.ADMIN))
    campaign = CampaignFactory(name="Image type", votes_required=2, max_votes=3)
    close_call = ItemFactory(campaign=campaign)
    vote_record(user=other, item_id=close_call.pk, label="Stock", client_uuid=uuid.uuid4())
    ItemFactory.create_batch(3, campaign=campaign)

    phone = browser.new_context(**PHONE)
    page = phone.new_page()
    page.set_default_timeout(20000)
    _sign_in(page, live_server.url, "ann", f"/label/{campaign.pk}/")
    assert _answer(page, "Stock") == close_call.pk  # closest to a decision comes first
    page.wait_for_function(PENDING, arg=0)
    close_call.refresh_from_db()
    assert (close_call.status, close_call.label) == ("decided", "Stock")

    desk = browser.new_context(viewport={"width": 1280, "height": 900}, has_touch=True)
    admin = desk.new_page()
    _sign_in(admin, live_server.url, "boss", "/admin/labeling/labelerquality/")
    admin.check(f"input[name=_selected_action][value='{ann.pk}']")
    admin.select_option("select[name=action]", "flag_labelers")
    admin.get_by_role("button", name="Go").click()
    admin.wait_for_load_state()
    assert f"item {close_call.pk} decided Stock → open" in admin.locator(".messagelist").inner_text()
    close_call.refresh_from_db()
    assert (close_call.status, close_call.vote_count) == ("open", 1)

    later = _answer(page, "Dealer")  # still taken, kept and marked, but no longer counted
    page.wait_for_function(PENDING, arg=0)
    assert Vote.objects.live().filter(user=ann, item_id=later).exists()
    assert Item.objects.get(pk=later).vote_count == 0
    phone.close()
    desk.close()


@pytest.mark.django_db(transaction=True)
def test_answers_left_by_a_session_that_ended_without_sign_out_wait_for_their_owner(live_server, browser, settings):
    settings.ROOT_URLCONF = URLS
    ann, bob = _labeler("ann"), _labeler("bob")
    campaign = CampaignFactory(name="Image type")
    ItemFactory.create_batch(10, campaign=campaign)
    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.set_default_timeout(20000)
    _sign_in(page, live_server.url, "ann", f"/label/{campaign.pk}/")
    page.route(VOTES_API, lambda route: route.abort())
    ann_given = {_answer(page, "Dealer"): "Dealer", _answer(page, "Stock"): "Stock"}
    context.clear_cookies()  # her session ends with no sign-out (expired, cookies cleared)
    page.unroute(VOTES_API)

    _sign_in(page, live_server.url, "bob", f"/label/{campaign.pk}/")  # the next person, same browser
    bob_item = _answer(page, "Placeholder")
    page.wait_for_function(PENDING, arg=0)
    page.wait_for_timeout(1500)
    assert _votes(bob) == {bob_item: "Placeholder"}  # his answer only
    assert _votes(ann) == {}  # hers still wait on the phone, under her name
    page.get_by_role("button", name="Log out").tap()
    page.wait_for_url("**/accounts/login/**")

    _sign_in(page, live_server.url, "ann", f"/label/{campaign.pk}/")
    page.wait_for_function(PENDING, arg=0)
    assert _votes(ann) == ann_given
    assert _votes(bob) == {bob_item: "Placeholder"}
    context.close()
