"""The one text folding and the one did-you-mean."""

from __future__ import annotations

import pytest

from dorfbot.text import closest, fold


@pytest.mark.parametrize(
    ("typed", "folded"),
    [
        ("Löschen", "loeschen"),
        ("LÖSCHEN", "loeschen"),
        ("Straße", "strasse"),
        ("Übermorgen", "uebermorgen"),
        ("Café Crème", "cafe creme"),
        ("18–20", "18-20"),
        ("Peter’s", "peter's"),
        ("x²", "x²"),  # digits stay what they are: ² is no 2
        ("１８", "１８"),  # nor full-width digits ASCII ones
    ],
)
def test_fold(typed: str, folded: str) -> None:
    assert fold(typed) == folded


def test_fold_can_keep_accents_for_names_stored_with_them() -> None:
    assert fold("Café Süd", keep_accents=True) == "café sued"


def test_closest_compares_folded_and_answers_in_the_known_spelling() -> None:
    known = ["Garten", "Süd", "Kinderbetreuung"]
    assert closest("gartn", known) == "Garten"
    assert closest("SUED", known) == "Süd"
    assert closest("kinderbetreung", known) == "Kinderbetreuung"
    assert closest("fahrrad", known) is None
