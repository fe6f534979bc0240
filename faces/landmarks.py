"""FaceMesh landmark indices every stage refers to (478 points with the iris refinement)."""

from __future__ import annotations

N_LANDMARKS = 478
# Subject's right eye (image left) and left eye (image right), in eye-aspect-ratio order p1..p6:
# outer corner, two upper lid points, inner corner, two lower lid points (for the right eye;
# mirrored for the left).
RIGHT_EYE = (33, 160, 158, 133, 153, 144)
LEFT_EYE = (362, 385, 387, 263, 373, 380)
RIGHT_IRIS, LEFT_IRIS = 468, 473
# Eye corners as (outer, inner) for each eye.
RIGHT_EYE_CORNERS = (RIGHT_EYE[0], RIGHT_EYE[3])
LEFT_EYE_CORNERS = (LEFT_EYE[3], LEFT_EYE[0])
MOUTH_RIGHT_CORNER, MOUTH_LEFT_CORNER = 61, 291  # image left, image right
FOREHEAD, CHIN = 10, 152  # the face frame's vertical axis

EYE_POINTS = (*RIGHT_EYE, *LEFT_EYE, RIGHT_IRIS, LEFT_IRIS)
