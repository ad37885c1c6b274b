"""The families PAPA Fine-tune refuses (comfy_papa.host.families), by the host model's class."""

import pytest

from comfy_papa.host.families import refuse_unsupported_family, unsupported_family


class BaseModel: ...


class SDXL(BaseModel): ...


class SD3(BaseModel): ...


class Flux(BaseModel): ...


class Chroma(Flux): ...


class Patcher:
    def __init__(self, inner):
        self.model = inner


@pytest.mark.parametrize("cls", [BaseModel, SDXL, SD3])
def test_proven_families_pass(cls):
    assert unsupported_family(Patcher(cls())) is None
    refuse_unsupported_family(Patcher(cls()))


@pytest.mark.parametrize(
    "cls, family",
    [(Flux, "Flux"), (Chroma, "Flux")],
    ids=["flux", "chroma"],
)
def test_flux_is_refused_naming_the_family(cls, family):
    with pytest.raises(ValueError) as err:
        refuse_unsupported_family(Patcher(cls()))
    msg = str(err.value)
    assert f"does not support {family} models" in msg and cls.__name__ in msg
    assert "in place" in msg and "SD3" in msg, "the message says why and what works"
