"""SMS encoding and segments against hand-counted cases (GSM 03.38 / UCS-2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engagelab.channels.sms import GSM7_BASIC, GSM7_EXTENSION, sms_info


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("", "GSM-7", 0, 0),
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("a" * 159 + "€", "GSM-7", 161, 2),  # the euro sign takes two septets
        ("{}" * 40, "GSM-7", 160, 1),
        # an escape pair is never split: 152 + [2] does not fit 153, so it opens segment 2
        ("a" * 152 + "€" + "a" * 152, "GSM-7", 306, 3),
        ("a" * 152 + "€" + "a" * 151, "GSM-7", 305, 2),
        ("ç", "UCS-2", 1, 1),  # only upper-case Ç is in the GSM-7 alphabet
        ("Ç", "GSM-7", 1, 1),
        ("ж" * 70, "UCS-2", 70, 1),
        ("ж" * 71, "UCS-2", 71, 2),
        ("ж" * 134, "UCS-2", 134, 2),
        ("ж" * 135, "UCS-2", 135, 3),
        ("😀" * 35, "UCS-2", 70, 1),  # surrogate pairs: two code units each
        ("ж" * 66 + "😀" + "ж" * 66, "UCS-2", 134, 3),  # a pair is never split either
        ("a" * 150 + "😀", "UCS-2", 152, 3),  # one emoji turns the whole text UCS-2
    ],
)
def test_hand_counted(text, encoding, units, segments):
    info = sms_info(text)
    assert (info.encoding, info.units, info.segments) == (encoding, units, segments)


@given(st.text(alphabet=sorted(GSM7_BASIC - {"\r"}), max_size=700))
def test_basic_gsm_matches_the_closed_form(text):
    n = len(text)
    expect = 0 if n == 0 else 1 if n <= 160 else -(-n // 153)
    assert sms_info(text) == type(sms_info(""))("GSM-7", n, expect)


@given(st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION), max_size=500))
def test_segments_hold_every_septet(text):
    info = sms_info(text)
    assert info.units == len(text) + sum(c in GSM7_EXTENSION for c in text)
    if info.units > 160:  # every full segment holds 152 or 153 septets (a pair is not split)
        assert -(-info.units // 153) <= info.segments <= -(-info.units // 152)
