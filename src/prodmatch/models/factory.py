"""The one place that maps a model name, bundle folder or backend name to an Embedder (its model sessions)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from prodmatch.config import Settings
from prodmatch.errors import ModelUnavailableError
from prodmatch.models.bundle import Bundle, is_bundle
from prodmatch.models.embedder import Embedder, TowerEmbedder
from prodmatch.models.registry import Precision, get_spec, load_registry
from prodmatch.models.runtime import ModelSession
from prodmatch.models.tokenize import TextTokenizer
from prodmatch.models.weights import availability

Backend = Literal["onnx", "torch", "triton"]
BACKENDS: tuple[Backend, ...] = ("onnx", "torch", "triton")
FALLBACK_MODEL = "offline-effnet-minilm"
PREFERRED_MODEL = "clip-vit-b-32"


def cached_bundle_dir(name: str, precision: Precision, settings: Settings) -> Path:
    return settings.models_dir / f"{name}-{precision}"


def ensure_bundle(
    name_or_dir: str | Path,
    settings: Settings,
    precision: Precision | None = None,
    calibration_images: Sequence[Path] = (),
) -> Bundle:
    """The bundle for a folder, or for a registry name (exported into the models cache on first use)."""
    if is_bundle(Path(name_or_dir)):
        return Bundle(Path(name_or_dir))
    spec = get_spec(str(name_or_dir))
    chosen: Precision = precision or spec.default_precision
    folder = cached_bundle_dir(spec.name, chosen, settings)
    if is_bundle(folder):
        return Bundle(folder)
    status = availability(spec, settings.clip_weights, try_hub=True)
    if not status.available:
        raise ModelUnavailableError(f"model {spec.name} is not available: {status.reason}")
    from prodmatch.models.export import export_bundle

    return export_bundle(spec, chosen, folder, settings.clip_weights, calibration_images)


def create_embedder(bundle: Bundle, settings: Settings, backend: Backend | None = None) -> Embedder:
    """An Embedder for BUNDLE on BACKEND: "onnx" runs the bundle here, "torch" the reference modules, "triton"
    the bundle's towers on the Triton server at settings.model_url. None: triton when model_url is set."""
    if backend is None:
        backend = "triton" if settings.model_url else "onnx"
    if backend == "triton":
        if not settings.model_url:
            raise ModelUnavailableError("the triton backend needs a model URL (PRODMATCH_MODEL_URL=triton://HOST/NAME)")
        from prodmatch.models.triton.session import open_triton_sessions

        return bundle_embedder(bundle, *open_triton_sessions(bundle.manifest, settings.model_url))
    if backend == "onnx":
        from prodmatch.models.onnx_runtime import OnnxSession

        image = OnnxSession(bundle.image_graph, settings.runtime)
        return bundle_embedder(bundle, image, OnnxSession(bundle.text_graph, settings.runtime))
    if backend == "torch":
        from prodmatch.models.torch_reference import open_reference

        reference = open_reference(get_spec(bundle.manifest.name), settings.clip_weights, settings.runtime)
        return TowerEmbedder(reference.manifest, reference.image, reference.text, reference.tokenizer)
    raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")


def bundle_embedder(bundle: Bundle, image: ModelSession, text: ModelSession) -> TowerEmbedder:
    """BUNDLE's manifest and tokenizer around its two towers, wherever IMAGE and TEXT run them."""
    return TowerEmbedder(bundle.manifest, image, text, TextTokenizer(bundle.tokenizer_file, bundle.manifest.text))


def choose_default_model(settings: Settings) -> tuple[str, str]:
    """(model name, why): CLIP when its weights can be had, else the offline pair. Never a random model."""
    clip = availability(load_registry()[PREFERRED_MODEL], settings.clip_weights, try_hub=True)
    if clip.available:
        return PREFERRED_MODEL, f"{PREFERRED_MODEL}: {clip.reason}"
    return FALLBACK_MODEL, f"{FALLBACK_MODEL} (CLIP unavailable: {clip.reason})"
