"""Universal Category System (UCS) file names:
``CatID(-UserCategory)_FXName_CreatorID_SourceID_UserData.ext``.

A name that follows UCS gives the clip these fields (see :func:`ucs_fields`):

    ucs_catid       the CatID, e.g. ``DOORWood`` (no category or subcategory names: the published UCS
                    list is not shipped, its licence is not clearly redistributable)
    ucs_user_category  the optional UserCategory after the CatID's hyphen, e.g. ``Interior`` in
                    ``DOORWood-Interior_Slam_JD`` (when the name has it)
    ucs_fx_name     the FXName, e.g. ``Slam hard``
    ucs_creator_id  the CreatorID, e.g. ``JD``
    ucs_source_id   the SourceID, e.g. ``ACME`` (when the name has it)
    ucs_user_data   the UserData: everything after the fourth ``_`` (when the name has it)

Strict, so that ordinary names are not taken for UCS: at least CatID, FXName and CreatorID parts, and a
CatID made of letters only that starts with two or more capitals (the category) and ends with a capitalised
word (the subcategory): ``DOORWood``, ``AMBForst``, ``WATRSurf``. ``dog_bark_01.wav``, ``Kick_808.wav`` and
``DOOR_Wood_JD.wav`` are not UCS.
"""

import re

CAT_ID = re.compile(r"[A-Z]{2,}(?:[A-Z][a-z]+)+")  # CATEGORY capitals, then Subcategory word(s)
USER_CATEGORY = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ]*")  # after the CatID and a hyphen
PARTS_AT_LEAST = 3  # CatID, FXName, CreatorID
FIELD_NAMES = ("ucs_catid", "ucs_fx_name", "ucs_creator_id", "ucs_source_id", "ucs_user_data")


def ucs_fields(name: str) -> dict[str, str]:
    """The UCS fields of a file name (its last path component; the extension is dropped), {} when the name
    does not follow UCS."""
    stem = re.split(r"[\\/]", name)[-1]
    if "." in stem:
        stem = stem.rsplit(".", 1)[0]
    parts = stem.split("_", len(FIELD_NAMES) - 1)
    cat_id, _, user_category = parts[0].partition("-")
    if (len(parts) < PARTS_AT_LEAST or not CAT_ID.fullmatch(cat_id)
            or (parts[0] != cat_id and not USER_CATEGORY.fullmatch(user_category))):
        return {}
    parts = [cat_id, *(p.strip() for p in parts[1:])]
    if not all(parts[:PARTS_AT_LEAST]):
        return {}
    fields = {key: value for key, value in zip(FIELD_NAMES, parts, strict=False) if value}
    if user_category.strip():
        fields["ucs_user_category"] = user_category.strip()
    return fields
