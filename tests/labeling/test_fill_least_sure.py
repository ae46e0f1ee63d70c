"""Active learning: a campaign filled with the pictures the model is least sure of."""

import pytest

from classification.models import GroundTruth, ModelVersion, Prediction
from labeling.fill import FillError, campaign_fill_least_sure
from labeling.models import Item
from tests.labeling.conftest import CampaignFactory, ImageFactory, ItemFactory


@pytest.fixture
def scored(db):
    """Six pictures whose banner predictions score 0.50, 0.55, … 0.75."""
    version = ModelVersion.objects.create(name="learned-t", backend="learned", params={}, status="candidate")
    images = [ImageFactory() for _ in range(6)]
    for i, image in enumerate(images):
        Prediction.objects.create(
            image=image, attribute="banner", value="yes", score=0.5 + 0.05 * i, model_version=version
        )
    return images


@pytest.mark.django_db
def test_least_sure_fill_adds_the_lowest_scored_pictures_not_labelled_nor_present(scored):
    campaign = CampaignFactory(attribute="banner")
    GroundTruth.objects.create(image=scored[0], attribute="banner", value="yes", source="consensus")
    ItemFactory(campaign=campaign, image=scored[1])

    result = campaign_fill_least_sure(campaign=campaign, count=2)

    assert (result.added, result.already) == (2, 0)
    added = set(Item.objects.filter(campaign=campaign).values_list("image_id", flat=True))
    assert added == {scored[1].pk, scored[2].pk, scored[3].pk}


@pytest.mark.django_db
def test_least_sure_fill_says_what_to_do_when_the_model_scores_nothing_for_the_attribute():
    campaign = CampaignFactory(attribute="position")
    with pytest.raises(FillError, match="no scored position yet: fill at random first"):
        campaign_fill_least_sure(campaign=campaign, count=5)


@pytest.mark.django_db
def test_the_fill_api_takes_least_sure_with_a_count(scored, api_as, admin_user):
    campaign = CampaignFactory(attribute="banner")
    client = api_as(admin_user)

    missing = client.post(f"/api/v1/campaigns/{campaign.pk}/fill/", {"source": "least_sure"}, format="json")
    response = client.post(f"/api/v1/campaigns/{campaign.pk}/fill/", {"source": "least_sure", "count": 3})

    assert missing.status_code == 400 and "count" in missing.json()["error"]["message"]
    assert response.status_code == 200 and response.json()["added"] == 3
    ids = set(Item.objects.filter(campaign=campaign).values_list("image_id", flat=True))
    assert ids == {image.pk for image in scored[:3]}
