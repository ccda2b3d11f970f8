"""A saved segment is a frozen spec like a campaign: changes go through .replace()."""

import pytest

from engagelab.errors import FrozenSpecError, SpecError
from engagelab.segments import Segment, did


def test_assigning_names_replace_and_replace_validates():
    seg = Segment(did("Charged"), name="buyers")
    with pytest.raises(FrozenSpecError, match=r"segment\.replace\(name=\.\.\.\)"):
        seg.name = "other"
    assert seg.replace(name="other").name == "other" and seg.name == "buyers"
    with pytest.raises(SpecError, match="name"):
        seg.replace(name=3)
    with pytest.raises(SpecError, match="is not a field of Segment"):
        seg.replace(nme="x")
    assert hash(seg) == hash(Segment(did("Charged"), name="buyers"))
