from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fsbrain.api.app import create_app
from fsbrain.config import load_settings
from fsbrain.service import Platform

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "application.json"


@pytest.fixture
def application():
    return json.loads(FIXTURE.read_text(encoding="utf-8"))


@pytest.fixture
def make_client(tmp_path):
    made = []

    def make(**overrides):
        overrides.setdefault("home", tmp_path / "home")
        settings = load_settings(**overrides)
        platform = Platform(settings)
        client = TestClient(create_app(platform, background=False), raise_server_exceptions=False)
        made.append(platform)
        return client, platform

    yield make
    for p in made:
        p.close()


@pytest.fixture
def client(make_client):
    return make_client()[0]
