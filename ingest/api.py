"""The ingest stage's public API: people, releases, the consent rule, shoot ingest, and the reads
of shoots, shots, sitters and releases."""

from __future__ import annotations

from ingest.coordinator import IngestSummary, ingest_folder, shoot_id_by_name
from ingest.gate import ConsentVerdict, RecheckResult, classify, recheck, update_status
from ingest.people import (
    EXPIRY_WARNING_DAYS,
    ErasureResult,
    ReleaseDocument,
    add_person,
    add_release,
    check_email,
    erase_personal_data,
    get_person,
    release_document,
    revoke_release,
)
from ingest.reads import (
    FaceCard,
    FailureRow,
    PersonRow,
    ReleaseRow,
    ShootRow,
    ShotCard,
    contact_sheet,
    count_shots,
    ingest_failures,
    list_people,
    list_releases,
    list_shoots,
    person_codes,
    shoot_uses_folder,
)
from ingest.releases import ReleaseState, ReleaseStatus, release_status
from ingest.shoot_folder import ShootManifest, read_shoot_folder

__all__ = [
    "EXPIRY_WARNING_DAYS",
    "ErasureResult",
    "ReleaseDocument",
    "check_email",
    "erase_personal_data",
    "release_document",
    "FaceCard",
    "FailureRow",
    "IngestSummary",
    "PersonRow",
    "ReleaseRow",
    "ShootRow",
    "ShotCard",
    "contact_sheet",
    "count_shots",
    "ingest_failures",
    "list_people",
    "list_releases",
    "list_shoots",
    "person_codes",
    "shoot_uses_folder",
    "RecheckResult",
    "ReleaseState",
    "ReleaseStatus",
    "ShootManifest",
    "ConsentVerdict",
    "add_person",
    "add_release",
    "classify",
    "get_person",
    "ingest_folder",
    "read_shoot_folder",
    "recheck",
    "release_status",
    "revoke_release",
    "shoot_id_by_name",
    "update_status",
]
