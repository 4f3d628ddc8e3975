"""Words as residents type them, compared as they mean them.

One folding for every comparison of typed words with known ones — command
names, date words, categories, districts, the search index — and one
did-you-mean built on it, so ``!Löschen``, ``loeschen`` and ``LOESCHEN`` are
the same everywhere.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Iterable

# Spelled out as German writes them without umlauts; ß becomes ss by casefold().
_SPELLED = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "–": "-", "—": "-", "’": "'"})


def fold(text: str, *, keep_accents: bool = False) -> str:
    """Lower case (``casefold``), umlauts and ß spelled out, typographic dashes and
    apostrophes as ASCII, other accents removed (``é`` → ``e``).

    Only canonical decomposition is used, never compatibility forms, so digits
    stay digits (``²`` does not become ``2``). ``keep_accents`` keeps ``é``: for
    names that were stored that way (room aliases made by earlier setups).
    """
    text = unicodedata.normalize("NFC", text).casefold().translate(_SPELLED)
    if keep_accents or text.isascii():
        return text
    decomposed = unicodedata.normalize("NFD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", stripped)


def closest(given: str, known: Iterable[str], *, cutoff: float = 0.6) -> str | None:
    """The known word ``given`` was most likely meant to be, spelled as it is known."""
    by_fold = {fold(word): word for word in known}
    match = difflib.get_close_matches(fold(given), list(by_fold), n=1, cutoff=cutoff)
    return by_fold[match[0]] if match else None
