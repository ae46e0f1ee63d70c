"""A person on a phone logs in and sees their sections, with nothing wider than the screen."""

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_labeler_logs_in_on_a_360px_phone_without_horizontal_scroll(browser, live_server, login, labeler):
    context = browser.new_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(f"{live_server.url}/")
    assert "/accounts/login/" in page.url  # every page requires login
    login(page, "lab", "pw-lab")
    page.goto(f"{live_server.url}/")
    assert page.get_by_role("link", name="Label").first.is_visible()
    assert page.get_by_role("link", name="Sitemaps").count() == 0
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.get_by_role("button", name="Log out").click()
    page.wait_for_load_state()
    assert "/accounts/login/" in page.url
    context.close()


def test_wrong_password_is_refused_with_a_message(browser, live_server, login, labeler):
    page = browser.new_page()
    login(page, "lab", "not-the-password")
    assert "/accounts/login/" in page.url
    assert "didn't match" in page.get_by_role("alert").inner_text()
    page.close()
