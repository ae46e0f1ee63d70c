"""The default heads shipped with the code: built on the installed features, and serving out of the box."""

from __future__ import annotations

import pytest

from classification import features, synthetic, synthetic_varied
from classification.classifiers.learned import LearnedClassifier, default_heads, default_params
from classification.models import ModelVersion
from classification.services import model_version_ensure_active


def test_the_shipped_heads_were_built_on_the_features_this_installation_computes():
    """A change of weights, graph or builtin features must come with `python -m classification.default_heads`."""
    document = default_heads()
    assert document["features"] == features.features_version()
    assert {"image_type", "color"} <= set(document["heads"])


@pytest.mark.parametrize(("kind", "label"), [("dealer", "Dealer"), ("stock", "Stock"), ("placeholder", "Placeholder")])
def test_the_default_model_reads_generated_pictures_it_was_not_built_from(kind, label):
    version = ModelVersion(name="t", backend="learned", params=default_params())
    classifier = LearnedClassifier(version, cache_features=False)
    seeds = range(900_000, 900_004)  # default_heads uses seeds below 100_000 (train) and from 100_000 (test)
    for seed in seeds:
        picture = synthetic.picture(kind=kind, color="Blue", width=640, height=480, seed=seed)
        assert classifier.classify(picture)["image_type"][0] == label
        varied, _ = synthetic_varied.picture(kind=kind, width=640, height=480, seed=seed)
        assert classifier.classify(varied)["image_type"][0] == label


@pytest.mark.django_db
def test_a_fresh_database_gets_a_learned_version_serving_the_default_heads(settings):
    settings.SPOTCHECK_CLASSIFIER_BACKEND = "learned"
    version = model_version_ensure_active()
    assert version.backend == "learned" and version.status == ModelVersion.Status.ACTIVE
    assert version.params == {"features": features.features_version(), "heads_source": "default"}
