"""Every threshold of the automatic checks on generated faces, in one place.

The image measures (alignment, symmetry, sides, craters, background) were calibrated on the
``train`` sources of the proxy set (:mod:`samples.proxy_faces`; `python -m bench.proxy_checks
--calibrate` prints the figures): each threshold is the 95th percentile of the measure over the
good train items, rounded up, so about 1 in 20 real, clean faces is flagged by each check. The
held-out sources were not looked at to choose them. The attribute tolerances are priors.
"""

from __future__ import annotations

FACE_FOUND = 0.5        # the mesh fits a face (1) or not (0)
PLAUSIBLE = 0.0         # failed human-face plausibility measures (faces.plausibility) allowed
# 95th percentiles on the train good items (24 crops of four faces) were 0.023, 2.30, 4.89,
# 0.267 and 2.85.
ALIGNMENT = 0.025       # mean landmark offset from the aligner's framing, in crop sides
SYMMETRY = 2.30         # eye-region asymmetry after mirroring (z-scored lightness + colour)
SIDES = 4.9             # ear/side-region asymmetry after mirroring, the same measure
CRATERS = 0.27          # darkest soft blob on the skin, over the skin's median lightness
BACKGROUND = 2.9        # log ratio of the typical to the least background detail energy

# Measured attributes against the conditioning label (priors, not calibrated).
SMILE_LIFT = 0.03       # mouth corners above the lip centre, in mouth widths: smiling
MOUTH_OPEN = 0.12       # inner-lip gap over mouth width: mouth open
SKIN_TONE_TOLERANCE = 2  # Monk steps between label and measurement before it is a mismatch
FRONTAL_DEG = 15.0      # |yaw| and |pitch| of a frontal pose
PROFILE_DEG = 55.0      # |yaw| from which a pose is a profile
UP_DOWN_DEG = 12.0      # |pitch| from which a pose is up or down
POSE_MARGIN_DEG = 8.0   # how far outside its label's range a pose must be to contradict it
