"""Every setting is documented in .env.example, and the file parses into valid settings."""

from __future__ import annotations

import re
from pathlib import Path

from coherex.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def _documented() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.M))


def test_every_setting_is_in_env_example():
    names = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        names.update(getattr(alias, "choices", [alias]))
    missing = sorted(n for n in names if isinstance(n, str) and n not in _documented())
    assert missing == [], f"document these in .env.example: {missing}"


def test_env_example_values_are_valid(tmp_path, monkeypatch):
    env = tmp_path / ".env"
    env.write_text((ROOT / ".env.example").read_text())
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.embedded_db and settings.sandbox == "local" and settings.llm_offline
