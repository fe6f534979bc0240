"""Face analysis shared by every stage: detection, the 478-point mesh, head pose, eye measures,
the human-face plausibility check and FFHQ alignment. A leaf: it imports nothing of the project but the kernel."""

from faces.align import align_face, ffhq_quad
from faces.detect import FaceFinding, ForkedAfterUseError, find_faces, mesh_aligned_face
from faces.plausibility import Plausibility, check_face

__all__ = ["FaceFinding", "ForkedAfterUseError", "Plausibility", "align_face", "check_face", "ffhq_quad", "find_faces",
           "mesh_aligned_face"]
