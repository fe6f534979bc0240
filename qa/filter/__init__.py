"""The filter learned from reviewers' votes on generated faces: it decides the faces a machine
can decide (accept or reject, each at a calibrated precision) and leaves the rest to people."""
