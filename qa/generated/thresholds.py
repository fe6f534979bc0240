"""Every threshold of the automatic checks on generated faces, in one place.

The image measures (alignment, symmetry, sides, craters, background, eye flatness) were calibrated on the
``train`` sources of the proxy set (:mod:`samples.proxy_faces`; `python -m bench.proxy_checks
--calibrate` prints the figures): each threshold is the 95th percentile of the measure over the
good train items, rounded up, so about 1 in 20 real, clean faces is flagged by each check (the eye
measures, four in one check, at their 99th percentiles, so that together they do the same). The
held-out sources were not looked at to choose them. The attribute tolerances are priors.
"""

from __future__ import annotations

FACE_FOUND = 0.5        # the mesh fits a face (1) or not (0)
PLAUSIBLE = 0.0         # failed human-face plausibility measures (faces.plausibility) allowed
# 95th percentiles on the train good items (56 crops of seven faces: Obama, Biden, Curie, Grace
# Hopper) were 0.0244 (alignment), 4.88 (sides), 4.21 (craters), 2.23 (background) and 2.55
# (eye flatness); the eye measures' 99th percentiles were 3.70, 0.0801, 0.252, 7.98 and 4.33.
ALIGNMENT = 0.025       # mean landmark offset from the aligner's framing, in crop sides
SIDES = 4.9             # ear/side-region asymmetry after mirroring, the same measure
CRATERS = 4.25          # darkest soft skin blob, in robust SDs (MAD) of the face's own skin texture
BACKGROUND = 2.23       # least sharp textured background cell: log shortfall from the median cell plus its weighted blur
EYE_FLATNESS = 2.55     # skin lightness over the lightness spread inside the lids
# The eye measures are four, each with its own threshold; the symmetry check is the largest of
# them in units of its threshold (flagged over 1). Each threshold is the 99th percentile over the
# good train items, rounded up, so that the four together flag about 1 in 20 clean faces.
SYMMETRY_PARTS = {
    "region": 3.7,          # eye regions after mirroring (z-scored lightness + colour)
    "iris_size": 0.081,     # |log| ratio of the iris diameters
    "opening": 0.26,        # |log| ratio of the lid gaps over the eye widths
    "iris_lightness": 8.0,  # CIELAB L* difference of the iris discs
    "iris_colour": 4.4,     # CIELAB a*b* distance of the iris discs
}
SYMMETRY = 1.0          # the symmetry check's threshold on that largest scaled part

# Measured attributes against the conditioning label (priors, not calibrated).
SMILE_LIFT = 0.03       # mouth corners above the lip centre, in mouth widths: smiling
MOUTH_OPEN = 0.12       # inner-lip gap over mouth width: mouth open
SKIN_TONE_TOLERANCE = 2  # Monk steps between label and measurement before it is a mismatch
FRONTAL_DEG = 15.0      # |yaw| and |pitch| of a frontal pose
PROFILE_DEG = 55.0      # |yaw| from which a pose is a profile
UP_DOWN_DEG = 12.0      # |pitch| from which a pose is up or down
POSE_MARGIN_DEG = 8.0   # how far outside its label's range a pose must be to contradict it
