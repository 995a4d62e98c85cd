"""Model URLs: parsed into a Triton target, or refused with the URL named."""

from __future__ import annotations

import pytest

from prodmatch.errors import ModelUnavailableError
from prodmatch.models.triton.client import TritonTarget


def test_model_urls_are_parsed_or_refused() -> None:
    target = TritonTarget.parse("triton+http://gpu-box/clip?timeout_s=5&retries=1&version=2")
    assert (target.protocol, target.address, target.name, target.version) == ("http", "gpu-box:8000", "clip", "2")
    assert (target.timeout_s, target.retries) == (5.0, 1)
    assert TritonTarget.parse("triton://gpu-box/clip").address == "gpu-box:8001"
    assert TritonTarget.parse("triton+grpc://gpu-box:9001/clip").address == "gpu-box:9001"
    for bad in ("http://gpu-box/clip", "triton://gpu-box", "triton://gpu-box/clip?retries=many"):
        with pytest.raises(ModelUnavailableError, match="model URL"):
            TritonTarget.parse(bad)
