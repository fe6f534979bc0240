"""Face analysis shared by every stage: detection, the 478-point mesh, head pose, eye measures
and FFHQ alignment. A leaf: it imports nothing of the project but the kernel."""

from faces.align import align_face, ffhq_quad
from faces.detect import FaceFinding, ForkedAfterUseError, find_faces, mesh_aligned_face

__all__ = ["FaceFinding", "ForkedAfterUseError", "align_face", "ffhq_quad", "find_faces", "mesh_aligned_face"]
