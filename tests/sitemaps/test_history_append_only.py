"""Manual-fix history is append-only: the model, the queryset and the admin all refuse changes and deletes."""

import pytest

from sitemaps.fixes import FixChange, fixes_apply
from sitemaps.models import AppendOnlyError, ManualFix

pytestmark = pytest.mark.django_db


@pytest.fixture
def fix(monkeypatch, reviewer, advertiser, make_picture):
    monkeypatch.setattr("sitemaps.tasks.fix_deliver.delay", lambda outbox_id: None)
    vi = make_picture(advertiser=advertiser, image_type="Dealer", color="Red")
    (made,) = fixes_apply(user=reviewer, advertiser=advertiser, changes=[FixChange(vi.id, "image_type", "Stock")])
    return made


def test_saving_an_existing_fix_is_refused(fix):
    fix.new_value = "Dealer"
    with pytest.raises(AppendOnlyError):
        fix.save()
    assert ManualFix.objects.get().new_value == "Stock"


def test_deleting_a_fix_is_refused(fix):
    with pytest.raises(AppendOnlyError):
        fix.delete()
    assert ManualFix.objects.count() == 1


def test_queryset_update_and_delete_are_refused(fix):
    with pytest.raises(AppendOnlyError):
        ManualFix.objects.filter(id=fix.id).update(new_value="Dealer")
    with pytest.raises(AppendOnlyError):
        ManualFix.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        ManualFix.objects.bulk_update([fix], ["new_value"])
    assert ManualFix.objects.get().new_value == "Stock"


def test_the_admin_shows_history_read_only(client, admin_user, fix):
    client.force_login(admin_user)
    change_url = f"/admin/advertiser_sitemaps/manualfix/{fix.id}/change/"
    assert client.get(change_url).status_code == 200  # viewable
    response = client.post(change_url, {"new_value": "Dealer", "old_value": "x"})
    assert response.status_code == 403
    assert client.post(f"/admin/advertiser_sitemaps/manualfix/{fix.id}/delete/", {"post": "yes"}).status_code == 403
    listing = client.post(
        "/admin/advertiser_sitemaps/manualfix/", {"action": "delete_selected", "_selected_action": [fix.id]}
    )
    assert listing.status_code in (200, 302, 403)
    assert ManualFix.objects.get().new_value == "Stock"
    assert client.get("/admin/advertiser_sitemaps/manualfix/add/").status_code == 403
