"""UCS file names (CatID_FXName_CreatorID_SourceID_UserData) and the ordinary names that are not UCS."""

import pytest

from index.ingest.ucs import ucs_fields


@pytest.mark.parametrize(("name", "fields"), [
    ("DOORWood_Slam hard_JD_ACME.wav", {"ucs_catid": "DOORWood", "ucs_fx_name": "Slam hard",
                                         "ucs_creator_id": "JD", "ucs_source_id": "ACME"}),
    ("AMBForst_Morning birds_RW.flac", {"ucs_catid": "AMBForst", "ucs_fx_name": "Morning birds",
                                        "ucs_creator_id": "RW"}),
    ("/lib/sub/WATRSurf_Waves crash_AB_SEA_close mic_take_3.wav",
     {"ucs_catid": "WATRSurf", "ucs_fx_name": "Waves crash", "ucs_creator_id": "AB", "ucs_source_id": "SEA",
      "ucs_user_data": "close mic_take_3"}),
    ("VEHCarDoor_Close_JD", {"ucs_catid": "VEHCarDoor", "ucs_fx_name": "Close", "ucs_creator_id": "JD"}),
    ("GUNAuto_Burst 3 rounds_XY_LIB_.wav", {"ucs_catid": "GUNAuto", "ucs_fx_name": "Burst 3 rounds",
                                            "ucs_creator_id": "XY", "ucs_source_id": "LIB"}),
    ("WATRSurf-Waves_Lapping_JD_LIB.wav", {"ucs_catid": "WATRSurf", "ucs_user_category": "Waves",
                                          "ucs_fx_name": "Lapping", "ucs_creator_id": "JD",
                                          "ucs_source_id": "LIB"}),
    ("DOORWood-Interior 2_Slam_JD.wav", {"ucs_catid": "DOORWood", "ucs_user_category": "Interior 2",
                                         "ucs_fx_name": "Slam", "ucs_creator_id": "JD"}),
])
def test_ucs_names_give_their_parts(name, fields):
    assert ucs_fields(name) == fields


@pytest.mark.parametrize("name", [
    "dog_bark_01.wav",  # lower case CatID
    "Kick_808_Hard.wav",  # one capital, then lower case
    "DOOR_Wood_JD.wav",  # no subcategory word in the CatID
    "DOORWOOD_Slam_JD.wav",  # capitals only
    "DOORWood_Slam.wav",  # no CreatorID
    "DOORWood.wav",
    "DOORWood__JD.wav",  # an empty FXName
    "DOORWood_Slam_.wav",  # an empty CreatorID
    "DOOR2Wood_Slam_JD.wav",  # a digit in the CatID
    "DOORWood9_Slam_JD.wav",
    "HiHat_open_02.wav",
    "DOORWood-_Slam_JD.wav",  # a hyphen and no UserCategory
    "DOORWood-Int.2_Slam_JD.wav",  # a UserCategory of other characters
    "dog-bark_loud_01.wav",
    "README",
    "",
])
def test_ordinary_names_are_not_ucs(name):
    assert ucs_fields(name) == {}
