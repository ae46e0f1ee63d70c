"""Classifier backends behind one interface (base.Classifier), chosen by a ModelVersion's backend."""

from __future__ import annotations

from classification.classifiers.base import Classifier, ClassifierError, Description, Values, describe
from classification.models import Backend, ModelVersion

__all__ = ["Classifier", "ClassifierError", "Description", "Values", "classifier_for", "describe"]


def classifier_for(model_version: ModelVersion) -> Classifier:
    """The backend object for a stored model version (its params are the backend's configuration)."""
    if model_version.backend == Backend.BUILTIN:
        from classification.classifiers.builtin import BuiltinClassifier

        return BuiltinClassifier(model_version)
    if model_version.backend == Backend.HTTP:
        from classification.classifiers.http import HttpClassifier

        return HttpClassifier(model_version)
    if model_version.backend == Backend.REKOGNITION:
        from classification.classifiers.rekognition import RekognitionClassifier

        return RekognitionClassifier(model_version)
    if model_version.backend == Backend.LEARNED:
        from classification.classifiers.learned import LearnedClassifier

        return LearnedClassifier(model_version)
    if model_version.backend == Backend.AZURE:
        from classification.classifiers.azure import AzureClassifier

        return AzureClassifier(model_version)
    if model_version.backend == Backend.CASCADE:
        from classification.classifiers.cascade import CascadeClassifier

        return CascadeClassifier(model_version, factory=classifier_for)
    raise ValueError(f"unknown classifier backend {model_version.backend!r}")
