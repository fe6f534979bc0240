"""Shot QA: frame metrics, the eye-state detector (:mod:`qa.eyes`) and the review queue."""
