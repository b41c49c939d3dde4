"""The API's documentation pages of the web process (`coherex web`) work offline: every script,
style sheet and icon they load is served by the platform itself, none from a CDN."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from coherex.api.app import create_app


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(path):
    client = TestClient(create_app(chat=False))
    page = client.get(path)
    assert page.status_code == 200
    loaded = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert loaded and all(u.startswith("/") for u in loaded), loaded  # no https://cdn…
    assert "cdn" not in page.text.lower() and "fonts.googleapis" not in page.text
    for url in loaded:
        assert client.get(url).status_code == 200, url
    assert any(u.endswith(".js") for u in loaded)
