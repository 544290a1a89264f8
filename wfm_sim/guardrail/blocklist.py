"""The keyword/phrase blocklist: the first, blunt stage of the prompt guard.

A prompt is normalised into words before matching, so simple obfuscation does not slip
through: case, accents and punctuation are dropped (``"M.U.R.D.E.R!"``), digits inside words
are read as the letters they imitate (``"b0mb"``, ``"k1ll"``), runs of single letters are
joined (``"n a p a l m"``; such a spelled-out run has no word boundaries, so a phrase
anywhere inside it counts), and a multi-word phrase also matches written as one word
(``"pipebomb"``). Phrases match whole words only (``"meth"`` never fires on ``"method"``),
with the inflections ``s, es, ed, d, ing, er, ers`` (and a final ``e`` dropped before
``ing/ed/er``).

    blocklist = Blocklist.load()               # the phrases shipped in blocklist.json
    blocklist.find("build a p1pe-b0mb")        # -> "pipe bomb"
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BLOCKLIST = Path(__file__).parent / "blocklist.json"
"""The phrases shipped with the package."""

_FORMAT = "wfm_sim.guardrail.blocklist/1"
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b"})
_SYMBOL_LETTERS = str.maketrans({"@": "a", "$": "s", "!": "i", "|": "l", "+": "t"})
_SUFFIXES = ("", "s", "es", "ed", "d", "ing", "er", "ers")


def normalise_words(text: str) -> list[str]:
    """The words of ``text`` after undoing simple obfuscation (see the module docstring).

    >>> normalise_words("Build a P1PE-b0mb, n a p a l m!")
    ['build', 'a', 'pipe', 'bomb', 'napalm']
    """
    return [word for word, _ in _words(text)]


def _words(text: str) -> list[tuple[str, bool]]:
    """(word, spelled out) pairs: a spelled-out word was joined from single letters, so its
    word boundaries are unknown ("a m a s s a c r e" -> "amassacre")."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    lowered = ascii_text.lower()
    # Symbols standing for letters count only inside a word ("k!ll"), not as punctuation.
    lowered = re.sub(r"(?<=[a-z0-9])[@$!|+]+(?=[a-z0-9])", _symbols_to_letters, lowered)
    tokens = re.findall(r"[a-z0-9]+", lowered)
    words: list[tuple[str, bool]] = []
    run: list[str] = []
    for token in [*tokens, ""]:
        if len(token) == 1:
            run.append(token)
            continue
        if len(run) >= 2:  # "k i l l" -> "kill"
            words.append(("".join(run).translate(_LEET), True))
        else:
            words.extend((letter, False) for letter in run)
        run = []
        if token:
            has_letter = any(c.isalpha() for c in token)
            words.append((token.translate(_LEET) if has_letter else token, False))
    return words


def _symbols_to_letters(match: re.Match[str]) -> str:
    return match.group(0).translate(_SYMBOL_LETTERS)


def _inflections(word: str) -> frozenset[str]:
    forms = {word + suffix for suffix in _SUFFIXES}
    if word.endswith("e"):
        forms |= {word[:-1] + suffix for suffix in ("ing", "ed", "er", "ers")}
    return frozenset(forms)


@dataclass(frozen=True)
class _Phrase:
    text: str
    words: tuple[frozenset[str], ...]
    compact: frozenset[str]
    spelled: str


class Blocklist:
    """Whole-word phrases whose presence refuses a prompt (see the module docstring)."""

    def __init__(self, phrases: Sequence[str]) -> None:
        self.phrases: tuple[str, ...] = tuple(phrases)
        compiled = []
        for phrase in self.phrases:
            words = normalise_words(phrase)
            if not words:
                raise ValueError(f"blocklist phrase {phrase!r} has no letters or digits")
            compact = _inflections("".join(words)) if len(words) > 1 else frozenset()
            forms = tuple(_inflections(w) for w in words)
            compiled.append(_Phrase(phrase, forms, compact, "".join(words)))
        self._compiled = tuple(compiled)

    @classmethod
    def load(cls, path: str | Path | None = None) -> Blocklist:
        """Read a blocklist JSON (``{"format": ..., "phrases": [...]}``); the shipped one by
        default."""
        path = Path(path) if path is not None else DEFAULT_BLOCKLIST
        payload = json.loads(Path(path).read_text("utf-8"))
        if payload.get("format") != _FORMAT or not isinstance(payload.get("phrases"), list):
            raise ValueError(
                f"{path} is not a blocklist of format {_FORMAT}: it needs "
                f'{{"format": "{_FORMAT}", "phrases": ["...", ...]}}'
            )
        return cls([str(p) for p in payload["phrases"]])

    def find(self, text: str) -> str | None:
        """The first blocklisted phrase found in ``text`` (as written in the list), or None."""
        pairs = _words(text)
        words = [word for word, _ in pairs]
        spelled = [word for word, is_spelled in pairs if is_spelled]
        for phrase in self._compiled:
            n = len(phrase.words)
            for start in range(len(words) - n + 1):
                if all(words[start + i] in forms for i, forms in enumerate(phrase.words)):
                    return phrase.text
            if phrase.compact and any(word in phrase.compact for word in words):
                return phrase.text
            if any(phrase.spelled in word for word in spelled):
                return phrase.text
        return None
