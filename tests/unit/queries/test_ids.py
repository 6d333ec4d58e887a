import pytest

from queries.errors import InvalidInput
from queries.ids import FeatureRef, Module, parse_uid


def test_full_and_short_forms_parse_to_the_same_feature() -> None:
    full = parse_uid("smollm2-demo/12-res/77")
    assert full == FeatureRef("smollm2-demo", 12, Module.RES, 77)
    assert parse_uid("12/res/77", atlas="smollm2-demo") == full
    assert full.uid == "smollm2-demo/12-res/77"
    assert full.short == "12/res/77"


@pytest.mark.parametrize("bad", ["", "12/res", "smollm2-demo/12-foo/3", "Smollm/1-res/2", "a/b-res/1"])
def test_bad_uids_are_rejected_with_the_expected_form(bad: str) -> None:
    with pytest.raises(InvalidInput, match="not valid|unknown module"):
        parse_uid(bad, atlas="smollm2-demo" if bad.count("/") != 2 else None)


def test_short_form_without_atlas_says_what_to_do() -> None:
    with pytest.raises(InvalidInput, match="give the atlas"):
        parse_uid("12/res/77")


def test_feature_of_another_atlas_is_rejected() -> None:
    with pytest.raises(InvalidInput, match="belongs to atlas 'other'"):
        parse_uid("other/1-res/2", atlas="mine")
