"""`prodmatch serve`'s settings: several workers serve a read-only catalog and share the cores."""

from __future__ import annotations

import os

import pytest
from fastapi import FastAPI

from prodmatch.api import app as app_module
from prodmatch.api.app import SETTINGS_ENV, create_app_from_environment, serve_settings_env
from prodmatch.cli.serve import _serve_settings
from prodmatch.config import Settings


def test_one_worker_keeps_the_settings(settings: Settings) -> None:
    chosen = _serve_settings(settings, "127.0.0.1", 8123, False)
    assert chosen.serve.workers == 1 and chosen.serve.port == 8123
    assert chosen.matching.learn_from_feedback and chosen.runtime.intra_op_threads is None


def test_several_workers_stop_learning_into_the_index_and_split_the_cores(settings: Settings) -> None:
    chosen = _serve_settings(settings, None, None, False, workers=2)
    assert chosen.serve.workers == 2 and not chosen.matching.learn_from_feedback
    assert chosen.runtime.intra_op_threads == max(1, (os.cpu_count() or 1) // 2)
    pinned = settings.model_copy(update={"runtime": settings.runtime.model_copy(update={"intra_op_threads": 3})})
    assert _serve_settings(pinned, None, None, False, workers=2).runtime.intra_op_threads == 3


def test_workers_build_their_app_from_the_parent_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = _serve_settings(settings, None, 8124, False, workers=2)
    env = serve_settings_env(chosen)
    assert Settings.model_validate_json(env[SETTINGS_ENV]) == chosen
    monkeypatch.setenv(SETTINGS_ENV, env[SETTINGS_ENV])
    monkeypatch.setenv("PRODMATCH_SERVE__PORT", "9999")  # the parent's settings win over the worker's environment
    built: list[Settings] = []
    monkeypatch.setattr(app_module, "create_app", lambda given: built.append(given) or FastAPI())
    create_app_from_environment()
    assert built == [chosen] and built[0].serve.port == 8124
