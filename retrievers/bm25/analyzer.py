"""The analyzer shared by indexing and querying: the same text must give the same terms."""

from __future__ import annotations

import re
from dataclasses import dataclass

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Analyzer:
    """Lower-case word tokens, optional English stop-word removal and Snowball stemming."""

    stem: bool = True
    stopwords: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "_stemmer", _english_stemmer() if self.stem else None)
        object.__setattr__(self, "_stop", _english_stopwords() if self.stopwords else frozenset())

    def tokens(self, text: str) -> list[str]:
        words = [w for w in _WORD.findall(text.lower()) if w not in self._stop]  # type: ignore[attr-defined]
        stemmer = self._stemmer  # type: ignore[attr-defined]
        return stemmer.stemWords(words) if stemmer is not None else words


def _english_stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def _english_stopwords() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)
