"""Image decoding and preprocessing: every bad upload embeds correctly or raises InvalidImageError."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prodmatch.errors import InvalidImageError
from prodmatch.models.preprocess import open_image, resize_and_crop, signature, to_tensor
from prodmatch.models.registry import Preprocess, get_spec

CLIP = get_spec("clip-vit-b-32").image.preprocess


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def gradient(width: int = 64, height: int = 48) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)
    pixels = np.stack(
        [np.tile(x, (height, 1)), np.tile(x[::-1], (height, 1)), np.full((height, width), 128, np.uint8)], axis=2
    )
    return Image.fromarray(pixels, "RGB")


def test_real_photo_decodes_to_rgb(myntra: Path) -> None:
    image = open_image(myntra / "images" / "36310.jpg")
    assert image.mode == "RGB" and min(image.size) > 224


def test_corrupt_bytes_raise_invalid_image() -> None:
    with pytest.raises(InvalidImageError, match="not a decodable image"):
        open_image(b"this is not an image at all")


def test_truncated_jpeg_raises_invalid_image(myntra: Path) -> None:
    data = (myntra / "images" / "36310.jpg").read_bytes()
    with pytest.raises(InvalidImageError, match="corrupt or truncated"):
        open_image(data[: len(data) // 2])


def test_missing_file_raises_invalid_image(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match="cannot open"):
        open_image(tmp_path / "nope.jpg")


def test_one_pixel_image_is_rejected_as_too_small() -> None:
    with pytest.raises(InvalidImageError, match="too small"):
        open_image(encode(Image.new("RGB", (1, 1), "red"), "PNG"))


def test_decompression_bomb_is_refused_before_decoding() -> None:
    data = encode(Image.new("RGB", (400, 300)), "PNG")
    with pytest.raises(InvalidImageError, match="decompression bomb"):
        open_image(data, max_pixels=100_000)


def test_cmyk_jpeg_becomes_rgb_with_the_same_colour() -> None:
    data = encode(Image.new("CMYK", (32, 32), (0, 255, 255, 0)), "JPEG", quality=95)
    pixel = open_image(data).getpixel((16, 16))
    assert isinstance(pixel, tuple) and pixel[0] > 200 and pixel[1] < 60 and pixel[2] < 60  # pure red survives


def test_sixteen_bit_png_scales_to_eight_bits() -> None:
    levels = np.full((32, 32), 65535, dtype=np.uint16)
    levels[:, :16] = 32896  # 128 * 257
    data = encode(Image.fromarray(levels), "PNG")
    image = open_image(data)
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (128, 128, 128)
    assert image.getpixel((31, 0)) == (255, 255, 255)


def test_animated_gif_uses_its_first_frame() -> None:
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("blue", "yellow")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    pixel = open_image(buffer.getvalue()).getpixel((5, 5))
    assert isinstance(pixel, tuple) and pixel[2] > 200 and pixel[0] < 60  # blue, not yellow


def test_exif_rotation_is_applied() -> None:
    image = gradient(64, 32)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    upright = open_image(encode(image, "JPEG", exif=exif.tobytes(), quality=95))
    assert upright.size == (32, 64)
    expected = np.asarray(image.transpose(Image.Transpose.ROTATE_270), dtype=np.int16)
    assert np.abs(np.asarray(upright, dtype=np.int16) - expected).mean() < 4


def test_transparency_becomes_white() -> None:
    data = encode(Image.new("RGBA", (32, 32), (255, 0, 0, 0)), "PNG")
    assert open_image(data).getpixel((3, 3)) == (255, 255, 255)


def test_draft_decoding_keeps_the_requested_resolution(myntra: Path) -> None:
    data = (myntra / "images" / "36310.jpg").read_bytes()
    full, drafted = open_image(data), open_image(data, draft_short_side=448)
    assert min(drafted.size) >= 448 and drafted.size[0] < full.size[0]


def test_resize_and_crop_follows_torchvision_semantics() -> None:
    spec = Preprocess(resize_short=256, crop=224, interpolation="bilinear", mean=(0, 0, 0), std=(1, 1, 1))
    cropped = resize_and_crop(gradient(300, 400), spec)
    assert cropped.size == (224, 224)
    # short side 300 -> 256, long side int(256 * 400 / 300) = 341; centre crop offset round(16) horizontally
    resized = gradient(300, 400).resize((256, 341), Image.Resampling.BILINEAR)
    assert np.array_equal(np.asarray(cropped), np.asarray(resized.crop((16, 58, 240, 282))))


def test_to_tensor_normalises_with_the_model_mean_and_std() -> None:
    batch = to_tensor([Image.new("RGB", (300, 260), (255, 0, 128))], CLIP)
    assert batch.shape == (1, 3, 224, 224) and batch.dtype == np.float32
    expected = (np.array([1.0, 0.0, 128 / 255]) - np.array(CLIP.mean)) / np.array(CLIP.std)
    np.testing.assert_allclose(batch[0, :, 100, 100], expected, rtol=1e-5)


def test_signature_matches_reencoded_copies_but_not_other_photos(myntra: Path) -> None:
    photo = open_image(myntra / "images" / "36310.jpg")
    copy = open_image(encode(photo, "JPEG", quality=70))
    other = open_image(myntra / "images" / "10649.jpg")

    def difference(a: bytes, b: bytes) -> float:
        return float(np.abs(np.frombuffer(a, np.uint8).astype(int) - np.frombuffer(b, np.uint8)).mean())

    assert difference(signature(photo), signature(copy)) < 1.5 < difference(signature(photo), signature(other))


def test_to_tensor_gives_the_same_bits_as_normalising_each_pixel() -> None:
    """The level table (preprocess._normalised_levels) is a speed-up only: every level of every channel, on random
    noise, comes out bit for bit as ((level / 255) - mean) / std in float32, so stored vectors stay valid."""
    noise = np.random.default_rng(7).integers(0, 256, (260, 300, 3), dtype=np.uint8)
    noise[0, :256] = np.arange(256, dtype=np.uint8)[:, None]  # every level present
    for spec in (CLIP, get_spec("offline-effnet-minilm").image.preprocess):
        image = Image.fromarray(noise, "RGB")
        pixels = np.asarray(resize_and_crop(image, spec), dtype=np.float32) / 255.0
        mean, std = np.asarray(spec.mean, np.float32), np.asarray(spec.std, np.float32)
        expected = ((pixels - mean) / std).transpose(2, 0, 1)
        assert np.array_equal(to_tensor([image, image], spec), np.stack([expected, expected]))


def test_decoding_an_rgb_jpeg_needs_no_copy_and_keeps_the_decoded_pixels(myntra: Path) -> None:
    """open_image transposes in place and leaves an RGB image as decoded (no copies: ingest decodes every photo)."""
    data = (myntra / "images" / "36310.jpg").read_bytes()
    reference = Image.open(io.BytesIO(data))
    reference.draft("RGB", (512, 683))
    decoded = open_image(data, draft_short_side=512)
    assert decoded.mode == "RGB" and decoded.tobytes() == reference.convert("RGB").tobytes()
    assert signature(decoded) == reference.convert("RGB").resize((16, 16), Image.Resampling.BOX).tobytes()
