"""Automatic checks on generated faces: what the pixels and the face mesh say about each image
(:mod:`qa.generated.checks`), stored on its row (:mod:`qa.generated.store`)."""

from qa.generated.checks import FaceChecks, check_face

__all__ = ["FaceChecks", "check_face"]
