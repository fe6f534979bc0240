"""People: sitters with their personal data and model releases. Admins only.

Admins search sitters by code, legal name or email, download a release's signed document, see
which releases have expired or expire within EXPIRY_WARNING_DAYS, and erase a sitter's personal
data on request (the code, releases, release documents and frames stay; see erase_personal_data)."""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import asdict
from pathlib import Path

import streamlit as st

from ingest.api import (
    EXPIRY_WARNING_DAYS,
    add_person,
    add_release,
    erase_personal_data,
    list_people,
    list_releases,
    person_codes,
    release_document,
)
from likeness.errors import InvalidInput
from likeness.models import Role, Scope
from model_registry.taint import revoke
from ui._common import guard, require_role, workbench
from ui.staging import safe_name

DOCUMENT_TYPES = ["pdf", "png", "jpg", "jpeg", "tif", "tiff"]
PEOPLE_COLUMNS = ("code", "legal_name", "date_of_birth", "email", "phone", "releases", "ai_training_today")
COLUMNS = {
    "code": "Code", "legal_name": "Legal name", "date_of_birth": "Date of birth", "email": "Email", "phone": "Phone",
    "releases": "Releases", "ai_training_today": "ai_training today", "id": "#", "person": "Person",
    "signed_on": "Signed", "expires_on": "Expires", "scopes": "Scopes", "guardian": "Guardian", "witness": "Witness",
    "document": "Document", "revoked_on": "Revoked", "revoked_reason": "Revocation reason",
}



def sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


user = require_role(Role.admin)
wb = workbench()
today = dt.date.today()
st.title("People")
search = st.text_input(
    "Search sitters", key="people_search", placeholder="code, legal name or email", icon=":material/search:"
)
tables = st.container()  # filled last, so it already shows what the forms below just wrote
add_tab, release_tab, revoke_tab, document_tab, erase_tab = st.tabs(
    ["Add a person", "Add a release", "Revoke a release", "Release documents", "Erase personal data"]
)

with add_tab, st.form("add_person", clear_on_submit=True):
    left, right = st.columns(2)
    code = left.text_input("Person code", key="person_code", placeholder="P0042")
    legal_name = right.text_input("Legal name", key="person_legal_name")
    date_of_birth = left.date_input(
        "Date of birth", value=None, min_value=dt.date(1900, 1, 1), max_value=today, key="person_date_of_birth"
    )
    email = right.text_input("Email", key="person_email")
    phone = left.text_input("Phone", key="person_phone")
    if st.form_submit_button("Add person", type="primary", key="add_person_submit"):
        with guard():
            with wb.db.unit_of_work() as session:
                added = add_person(
                    session=session, code=code, legal_name=legal_name.strip() or None, date_of_birth=date_of_birth,
                    email=email.strip() or None, phone=phone.strip() or None, actor=user.username,
                ).code
            st.success(f"Added {added}.")

with guard(stop=True), wb.db.unit_of_work() as session:
    codes = person_codes(session=session)
with release_tab, st.form("add_release", clear_on_submit=True):
    document = st.file_uploader("Signed document (PDF or scan)", type=DOCUMENT_TYPES, key="release_document")
    left, right = st.columns(2)
    release_person = left.selectbox("Person", codes, index=None, key="release_person")
    scopes = right.multiselect("Scopes", [s.value for s in Scope], default=[Scope.ai_training.value], key="release_scopes")
    signed_on = left.date_input("Signed on", value=today, min_value=dt.date(1990, 1, 1), max_value=today, key="release_signed")
    expires_on = right.date_input("Expires on", value=None, min_value=dt.date(1990, 1, 1), key="release_expires")
    guardian = left.text_input("Guardian (for a minor)", key="release_guardian")
    witness = right.text_input("Witness", key="release_witness")
    if st.form_submit_button("Add release", type="primary", key="add_release_submit"):
        with guard():
            if release_person is None or document is None:
                raise InvalidInput("a release needs a person and its signed document")
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / safe_name(document.name)
                path.write_bytes(document.getvalue())
                with wb.db.unit_of_work() as session:
                    added_id = add_release(
                        session=session, blobs=wb.blobs, person_code=release_person, document=path,
                        signed_on=signed_on, expires_on=expires_on, scopes=scopes,
                        guardian_name=guardian.strip() or None, witness_name=witness.strip() or None,
                        actor=user.username,
                    ).id
            st.success(f"Release #{added_id} added for {release_person}.")

with guard(stop=True), wb.db.unit_of_work() as session:
    open_releases = {r.id: r for r in list_releases(session=session) if r.revoked_on is None}
with revoke_tab, st.form("revoke_release", clear_on_submit=True):
    release_id = st.selectbox(
        "Release", list(open_releases), index=None, format_func=lambda i: open_releases[i].label(), key="revoke_id"
    )
    reason = st.text_input("Reason", key="revoke_reason")
    revoked_on = st.date_input("Revoked on", value=today, min_value=dt.date(1990, 1, 1), max_value=today, key="revoke_on")
    if st.form_submit_button("Revoke release", key="revoke_submit"):
        with guard():
            if release_id is None:
                raise InvalidInput("choose the release to revoke")
            with wb.db.unit_of_work() as session:
                result = revoke(session, release_id, reason, user.username, revoked_on=revoked_on)
            st.success(f"Release #{release_id} revoked; {result.describe()}.")
            if result.retrain:
                st.warning("Runs to retrain without " + result.person + ":\n\n"
                           + "\n".join(f"- {item.describe()}" for item in result.retrain), icon=":material/warning:")

with guard(stop=True), wb.db.unit_of_work() as session:
    all_releases = {r.id: r for r in list_releases(session=session)}
with document_tab:
    document_id = st.selectbox(
        "Release", list(all_releases), index=None, format_func=lambda i: all_releases[i].label(), key="document_release"
    )
    if document_id is not None:
        with guard(), wb.db.unit_of_work() as session:
            stored = release_document(session=session, blobs=wb.blobs, release_id=document_id)
            st.download_button(
                f"Download {stored.name}", stored.data, file_name=stored.name, mime=stored.mime_type,
                key="document_download", icon=":material/download:", on_click="ignore",
            )

with erase_tab, st.form("erase_person", clear_on_submit=True):
    st.caption(
        "Removes the sitter's legal name, email, phone, date of birth and self-identified data. The code, "
        "the releases with their signed documents (the evidence of consent for the frames kept) and the "
        "frames stay; revoke the release as well if consent is withdrawn. The date of birth is kept while "
        "the sitter was under 18 on a capture date, because it decides whether a guardian must sign."
    )
    erase_code = st.selectbox("Person", codes, index=None, key="erase_person")
    confirmed = st.checkbox("The sitter asked for their personal data to be erased; this cannot be undone",
                            key="erase_confirm")
    if st.form_submit_button("Erase personal data", key="erase_submit"):
        with guard():
            if erase_code is None or not confirmed:
                raise InvalidInput("choose the person and confirm the erasure")
            with wb.db.unit_of_work() as session:
                erasure = erase_personal_data(session=session, code=erase_code, actor=user.username)
            st.success(sentence(erasure.describe()))

with tables, guard(stop=True):
    with wb.db.unit_of_work() as session:
        people = list_people(session=session, today=today, personal_data=True, search=search)
        releases = list_releases(session=session)
    if search.strip():
        shown = {p.code for p in people}
        releases = [r for r in releases if r.person in shown]
    for release in releases:
        if (warning := release.expiry_warning(today, EXPIRY_WARNING_DAYS)) is not None:
            st.warning(sentence(warning), icon=":material/event_busy:")
    st.subheader("Sitters")
    if people:
        st.dataframe([asdict(p) for p in people], hide_index=True, column_config=COLUMNS, width="stretch",
                     column_order=PEOPLE_COLUMNS)
    elif search.strip():
        st.info("No sitter matches the search.")
    else:
        st.info("No sitters registered yet.")
    st.subheader("Releases")
    if releases:
        st.dataframe([asdict(r) for r in releases], hide_index=True, column_config=COLUMNS, width="stretch")
    else:
        st.info("No releases recorded yet.")
