"""The decisions API's fast input check gives exactly what its serializer gives, or defers to it."""

from __future__ import annotations

from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from adsite.ads.decision_input import decision_input_fast
from adsite.ads.views import DecisionsView

_text = st.one_of(
    st.sampled_from(["sidebar", "footer", "leaderboard", "travel", "u-42", "visitor.1:a", "", " sidebar", "sidebar\n",
                     "Side_Bar-2", "x" * 64, "x" * 65, "x" * 101, "true", "mobile", "desktop", "tablet", "other", "phone"]),
    st.text(max_size=8),
)
# mostly valid values, now and then one the serializer would trim, coerce or refuse
_VALID = ["sidebar", "footer", "travel", "u-42", "mobile", "other", "Side_Bar-2", "x" * 64]
_near = st.sampled_from(_VALID * 4 + ["", " sidebar", "x" * 65, "a b", 7])
_value = st.one_of(_text, st.booleans(), st.integers(-2, 2), st.none(), st.lists(_text, max_size=12))
_body = st.one_of(
    _likely := st.fixed_dictionaries(
        {"placements": st.lists(_near, min_size=0, max_size=4) | st.lists(_near, min_size=9, max_size=11)},
        optional={
            "user_id": _near, "device": st.sampled_from(["desktop", "mobile", "tablet", "other", "phone", " mobile"]),
            "categories": st.lists(_near, max_size=3) | st.lists(_near, min_size=19, max_size=21), "explain": st.sampled_from([True, False, True, False, "true", 1]),
        },
    ),
    _likely,
    st.fixed_dictionaries(
        {},
        optional={
            "user_id": _value, "placements": _value, "device": _value, "categories": _value, "explain": _value,
            "extra": _value,
        },
    ),
    _value,
)


def _serializer(data: Any) -> dict[str, Any] | None:
    serializer = DecisionsView.InputSerializer(data=data)
    return dict(serializer.validated_data) if serializer.is_valid() else None


@settings(max_examples=400, deadline=None)
@given(_body)
def test_fast_check_agrees_with_the_serializer(body: Any) -> None:
    fast = decision_input_fast(body)
    event("accepted by the fast check" if fast is not None else "deferred to the serializer")
    if fast is not None:  # whatever the fast check accepts, the serializer accepts with the same values
        assert _serializer(body) == fast


def test_fast_check_takes_the_usual_body_and_defers_the_rest() -> None:
    usual = {"user_id": "u-42", "placements": ["sidebar", "footer"], "explain": True}
    assert decision_input_fast(usual) == {
        "user_id": "u-42", "placements": ["sidebar", "footer"], "device": "other", "categories": [], "explain": True,
    }
    assert decision_input_fast({"placements": []}) is None  # an error: the serializer words it
    assert decision_input_fast({"placements": [" sidebar"]}) is None  # trimmed by the serializer, not here
    assert decision_input_fast(["sidebar"]) is None


def test_fast_check_and_serializer_refuse_repeats_wrong_types_and_unknown_fields() -> None:
    for body in (
        {"placements": ["sidebar", "sidebar"]},
        {"placements": ["sidebar"], "user_id": 123},
        {"placements": ["sidebar"], "explain": "yes"},
        {"placements": ["sidebar"], "bogus": 1},
        {"placements": ["sidebar"], "user_id": "a b"},
    ):
        assert decision_input_fast(body) is None and _serializer(body) is None, body
