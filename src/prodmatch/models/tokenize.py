"""Text tokenisation with the Rust `tokenizers` library, reproducing each model's reference tokenizer.

CLIP: OpenAI's SimpleTokenizer cleans text with ftfy, unescapes HTML twice, collapses whitespace and
lower-cases before byte-level BPE; the fast tokenizer does not run ftfy, so we clean in Python first.
Sequences are truncated so the end-of-text token is always kept (as the reference does).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path

import ftfy
import numpy as np
from tokenizers import Tokenizer

from prodmatch.errors import InvalidTextError
from prodmatch.models.registry import TextTowerSpec

_WHITESPACE = re.compile(r"\s+")
# The arrays encode() returns; a text tower takes some of them (CLIP's only input_ids).
TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def clean_clip_text(text: str) -> str:
    """OpenAI CLIP's basic_clean + whitespace_clean + lower."""
    text = html.unescape(html.unescape(ftfy.fix_text(text)))
    return _WHITESPACE.sub(" ", text).strip().lower()


class TextTokenizer:
    """Turns texts into the padded int64 arrays a text tower takes."""

    def __init__(self, tokenizer_file: Path, spec: TextTowerSpec) -> None:
        self._spec = spec
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=spec.max_length)

    @property
    def max_length(self) -> int:
        return self._spec.max_length

    def normalise(self, text: str) -> str:
        """The text as the model sees it before tokenisation; raises InvalidTextError when empty."""
        if not isinstance(text, str):
            raise InvalidTextError(f"text must be a string, got {type(text).__name__}")
        cleaned = clean_clip_text(text) if self._spec.tokenizer == "clip" else _WHITESPACE.sub(" ", text).strip()
        if not cleaned:
            raise InvalidTextError("text is empty")
        return cleaned

    def encode(
        self, texts: Sequence[str], *, pad_to_max: bool = False, pad_to_multiple_of: int = 1
    ) -> dict[str, np.ndarray]:
        """input_ids, attention_mask and token_type_ids, padded to the longest text rounded up to a multiple of
        PAD_TO_MULTIPLE_OF (or to max_length)."""
        if not texts:
            raise InvalidTextError("no texts given")
        encodings = self._tokenizer.encode_batch([self.normalise(text) for text in texts])
        longest = -(-max(len(e.ids) for e in encodings) // pad_to_multiple_of) * pad_to_multiple_of
        width = self._spec.max_length if pad_to_max else min(longest, self._spec.max_length)
        ids = np.full((len(encodings), width), self._spec.pad_id, dtype=np.int64)
        mask = np.zeros((len(encodings), width), dtype=np.int64)
        for row, encoding in enumerate(encodings):
            ids[row, : len(encoding.ids)] = encoding.ids
            mask[row, : len(encoding.ids)] = 1
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
