"""The phone labeling screen in a real browser: tap answers, lose the connection, undo — the server holds
exactly the votes given, and the page never scrolls sideways at 360 px."""

import pytest
from django.conf import settings
from django.urls import include, path, re_path
from django.views.static import serve

from tests.labeling.conftest import CampaignFactory, ItemFactory

# `browser` (one Chromium for the session, skipped with a reason when Debian's is missing) comes from
# tests/e2e/conftest.py.
pytestmark = [pytest.mark.e2e]

# The live server runs with DEBUG off, so media is not served by the project's URLs; this module is the
# URLconf for the test: the project's URLs plus the thumbnails.
urlpatterns = [
    re_path(r"^media/(?P<path>.*)$", serve, {"document_root": settings.MEDIA_ROOT}),
    path("", include("config.urls")),
]

LABELS = ["Dealer", "Stock", "Placeholder"]


def _labeler():
    from django.contrib.auth.models import Group, User

    from core.roles import Role

    for role in Role.values:
        Group.objects.get_or_create(name=role)
    user = User.objects.create_user("phone", password="pw-phone-123")
    user.groups.add(Group.objects.get(name=Role.LABELER))
    return user


def _lease_gone(user, item_id: int, timeout: float = 10.0) -> bool:
    """Wait for the page's background DELETE of a skipped item's lease to land."""
    import time

    from labeling.models import Lease

    deadline = time.monotonic() + timeout
    while Lease.objects.filter(user=user, item_id=item_id).exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


ARMED = "document.getElementById('lb-screen').dataset.armed === '1'"


def _live_votes(user) -> dict[int, str]:
    from labeling.models import Vote

    return dict(Vote.objects.live().filter(user=user).values_list("item_id", "label"))


@pytest.mark.django_db(transaction=True)
def test_phone_labeler_answers_offline_and_undoes_and_the_server_holds_exactly_those_votes(
    live_server, browser, settings
):
    settings.ROOT_URLCONF = __name__
    user = _labeler()
    campaign = CampaignFactory(name="Image type", guidelines="**Dealer** = a real photo.")
    for _ in range(16):
        ItemFactory(campaign=campaign)

    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(15000)
    page.goto(f"{live_server.url}/accounts/login/?next=/label/")
    page.fill("#id_username", "phone")
    page.fill("#id_password", "pw-phone-123")
    page.get_by_role("button", name="Log in").tap()
    page.get_by_role("link", name="Start labeling").tap()
    figure = page.locator("#lb-figure")
    screen = page.locator("#lb-screen")

    given: dict[int, str] = {}
    order: list[int] = []

    def answer(n: int) -> None:
        page.wait_for_function(ARMED)  # answers count once the picture has been painted for a moment
        item_id = int(figure.get_attribute("data-item-id"))
        label = LABELS[n % 3]
        page.get_by_role("button", name=label, exact=False).first.tap()
        given[item_id] = label
        order.append(item_id)
        page.wait_for_function("id => document.getElementById('lb-figure').dataset.itemId !== String(id)", arg=item_id)

    page.wait_for_function("document.getElementById('lb-figure').dataset.itemId")
    page.wait_for_function("document.getElementById('lb-picture').naturalWidth > 0")  # the thumbnail shows
    for n in range(10):
        answer(n)
    page.wait_for_function("document.getElementById('lb-screen').dataset.pending === '0'")
    assert _live_votes(user) == given
    assert page.locator("#lb-counter").inner_text() == "10 this session"

    context.set_offline(True)
    for n in range(10, 12):
        answer(n)
    assert screen.get_attribute("data-pending") == "2"
    assert len(_live_votes(user)) == 10  # nothing reached the server, and the taps did not wait for it
    context.set_offline(False)
    page.wait_for_function("document.getElementById('lb-screen').dataset.pending === '0'", timeout=40000)
    assert _live_votes(user) == given

    page.get_by_role("button", name="Undo last answer").tap()
    undone = order.pop()
    del given[undone]
    assert figure.get_attribute("data-item-id") == str(undone)  # the picture comes back to be answered again
    page.wait_for_function("document.getElementById('lb-screen').dataset.pending === '0'", timeout=40000)
    assert _live_votes(user) == given
    assert len(given) == 11
    assert page.locator("#lb-counter").inner_text() == "11 this session"

    # The guidelines are one tap away and render the Markdown.
    page.get_by_role("button", name="Guidelines").tap()
    assert page.locator("#lb-guide strong").inner_text() == "Dealer"
    page.get_by_role("button", name="Back to labeling").tap()

    # No horizontal scroll on a 360 px phone.
    page.set_viewport_size({"width": 360, "height": 740})
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    context.close()


@pytest.mark.django_db(transaction=True)
def test_desktop_keys_answer_skip_and_undo_and_swipe_answers_two_choice_campaigns(live_server, browser, settings):
    settings.ROOT_URLCONF = __name__
    user = _labeler()
    campaign = CampaignFactory(name="Banners", attribute="banner")
    for _ in range(8):
        ItemFactory(campaign=campaign)
    context = browser.new_context(viewport={"width": 1200, "height": 900}, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(15000)
    page.goto(f"{live_server.url}/accounts/login/?next=/label/{campaign.pk}/")
    page.fill("#id_username", "phone")
    page.fill("#id_password", "pw-phone-123")
    page.keyboard.press("Enter")
    figure = page.locator("#lb-figure")
    page.wait_for_function("document.getElementById('lb-figure').dataset.itemId")

    def current() -> int:
        return int(figure.get_attribute("data-item-id"))

    def wait_change(old: int) -> None:
        page.wait_for_function("id => document.getElementById('lb-figure').dataset.itemId !== String(id)", arg=old)

    def press(key: str) -> None:
        page.wait_for_function(ARMED)
        page.keyboard.press(key)

    first = current()
    press("1")  # "yes" (banner)
    wait_change(first)
    second = current()
    press("s")  # skip: no vote, and the lease goes back to the crowd
    wait_change(second)
    assert _lease_gone(user, second)
    third = current()
    press("0")  # can't tell
    wait_change(third)
    page.keyboard.press("Backspace")  # undo the can't tell
    assert current() == third
    press("2")  # "no"
    wait_change(third)
    fourth = current()
    page.wait_for_function(ARMED)
    box = figure.bounding_box()
    y = box["y"] + box["height"] / 2
    page.evaluate(
        """([x0, x1, y]) => {
            const el = document.getElementById('lb-figure');
            const t = (x) => new Touch({identifier: 1, target: el, clientX: x, clientY: y});
            el.dispatchEvent(new TouchEvent('touchstart', {touches: [t(x0)], changedTouches: [t(x0)], bubbles: true}));
            el.dispatchEvent(new TouchEvent('touchend', {touches: [], changedTouches: [t(x1)], bubbles: true}));
        }""",
        [box["x"] + box["width"] - 20, box["x"] + 20, y],
    )  # swipe left: the first choice
    wait_change(fourth)
    page.wait_for_function("document.getElementById('lb-screen').dataset.pending === '0'")
    assert _live_votes(user) == {first: "yes", third: "no", fourth: "yes"}
    context.close()


@pytest.mark.django_db(transaction=True)
def test_reviewer_pages_fit_a_360px_phone_and_one_tap_adjudicates(live_server, browser, settings):
    import uuid

    from django.contrib.auth.models import Group, User

    from core.roles import Role
    from labeling.services import vote_record

    settings.ROOT_URLCONF = __name__
    voters = [_labeler()] + [User.objects.create_user(f"v{n}") for n in range(2)]
    boss = User.objects.create_user("boss", password="pw-boss-123", is_staff=True, is_superuser=True)
    boss.groups.add(Group.objects.get(name=Role.ADMIN))
    campaign = CampaignFactory(
        name="Positions with a rather long name for a small phone", attribute="position", votes_required=2, max_votes=3
    )
    item = ItemFactory(campaign=campaign)
    for voter, label in zip(voters, ["front", "rear", "interior"], strict=True):
        vote_record(user=voter, item_id=item.pk, label=label, client_uuid=uuid.uuid4())

    context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(f"{live_server.url}/accounts/login/?next=/label/conflicts/")
    page.fill("#id_username", "boss")
    page.fill("#id_password", "pw-boss-123")
    page.get_by_role("button", name="Log in").tap()
    page.get_by_role("button", name=f"Set item {item.pk} to Interior").tap()
    page.get_by_text("No conflicts waiting").wait_for()
    assert page.get_by_role("status").inner_text().startswith(f"Item {item.pk} set to interior")
    item.refresh_from_db()
    assert (item.status, item.label) == ("adjudicated", "interior")
    for url in ("/label/", "/label/stats/", f"/label/{campaign.pk}/", f"/label/{campaign.pk}/fill/"):
        page.goto(live_server.url + url)
        assert page.evaluate("document.documentElement.scrollWidth") <= 360, url
    context.close()
