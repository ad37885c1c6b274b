"""FinetuneSettings: validated once when built, and read back from a committed round's record."""

import json
from dataclasses import fields

import pytest

from comfy_papa.core.settings import FinetuneSettings, SettingsError


def test_a_record_reads_back_as_the_same_settings():
    s = FinetuneSettings(method="EPAPA", cut=0.3, steps=7, alpha=4.0, seed=2**64 - 1)
    record = json.loads(json.dumps(s.as_dict()))  # as a committed round stores it
    assert FinetuneSettings.from_dict(record) == s


def test_missing_fields_take_the_defaults():
    assert FinetuneSettings.from_dict({}) == FinetuneSettings()
    s = FinetuneSettings.from_dict({"method": "EPAPA", "steps": 3})
    assert s == FinetuneSettings(method="EPAPA", steps=3)


def test_an_older_profiles_record_loads():
    """A record written before some fields existed, with a key no version reads any more and
    whole numbers where floats belong (JSON keeps 8 and 8.0 apart)."""
    old = {"method": "PAPA", "cut": 0, "steps": 10, "learning_rate": 0.002, "rank": 8, "alpha": 8}
    old["retired_setting"] = "whatever"
    s = FinetuneSettings.from_dict(old)
    assert s.alpha == 8.0 and type(s.alpha) is float and type(s.cut) is float
    assert s.c_trust == FinetuneSettings().c_trust  # recorded later: the default
    assert not hasattr(s, "retired_setting")


@pytest.mark.parametrize(
    "name, value",
    [
        ("steps", "10"),
        ("steps", 10.0),
        ("steps", True),
        ("learning_rate", "2e-3"),
        ("method", 1),
        ("diversity", 1),
        ("alpha", None),
    ],
)
def test_a_wrong_type_is_named(name, value):
    with pytest.raises(SettingsError) as err:
        FinetuneSettings.from_dict({name: value})
    assert repr(name) in str(err.value)


def test_an_out_of_range_record_is_refused_with_the_field():
    with pytest.raises(SettingsError, match="cut"):
        FinetuneSettings.from_dict({"method": "EPAPA", "cut": 1.5})
    with pytest.raises(SettingsError, match="mapping"):
        FinetuneSettings.from_dict([1, 2])


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"cut": 1.0}, "cut"),
        ({"cut": -0.1}, "cut"),
        ({"method": "papa"}, "method"),
        ({"c_sim": -1.0}, "c_sim"),
    ],
)
def test_invalid_settings_are_refused_when_built(kw, needle):
    with pytest.raises(ValueError, match=needle):
        FinetuneSettings(**kw)


def test_every_field_has_a_default():
    """from_dict fills what a record lacks: every field needs its one default."""
    s = FinetuneSettings()
    assert set(s.as_dict()) == {f.name for f in fields(FinetuneSettings)}
