"""Settings: each bad value fails at start with the variable's name and the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from registry.config import SettingsError, SharedSettings, load_settings
from retrain.settings import RetrainSettings
from service.settings import ServiceSettings
from shadowline.settings import StackSettings


def test_defaults_load_without_any_environment(in_tmp_cwd: Path) -> None:
    settings = load_settings(ServiceSettings)
    assert settings.port == 8000
    assert settings.kafka_servers == ["127.0.0.1:9092"]


def test_environment_overrides_and_stack_file_fallback(
    in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (in_tmp_cwd / ".shadowline").mkdir()
    (in_tmp_cwd / ".shadowline" / "stack.env").write_text(
        "SHADOWLINE_REDIS_URL=redis://127.0.0.1:1234/0\nSHADOWLINE_KAFKA_BOOTSTRAP=127.0.0.1:5678\n"
    )
    monkeypatch.setenv("SHADOWLINE_KAFKA_BOOTSTRAP", "127.0.0.1:9999,127.0.0.1:9998")
    settings = load_settings(RetrainSettings)
    assert settings.redis_url.get_secret_value() == "redis://127.0.0.1:1234/0"
    assert settings.kafka_servers == ["127.0.0.1:9999", "127.0.0.1:9998"]


def test_bad_values_are_named_with_their_problem(
    in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHADOWLINE_PORT", "eighty")
    monkeypatch.setenv("SHADOWLINE_KAFKA_BOOTSTRAP", "localhost")
    with pytest.raises(SettingsError) as info:
        load_settings(ServiceSettings)
    assert str(info.value).splitlines() == [
        "invalid settings for ServiceSettings:",
        "  SHADOWLINE_KAFKA_BOOTSTRAP='localhost': Value error, "
        "'localhost' is not host:port (comma-separate several)",
        "  SHADOWLINE_PORT='eighty': Input should be a valid integer, "
        "unable to parse string as an integer",
    ]


def test_secret_values_are_never_echoed(in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOWLINE_REDIS_URL", "http://user:hunter22@host/0")
    with pytest.raises(SettingsError) as info:
        load_settings(SharedSettings)
    assert "hunter22" not in str(info.value)
    assert "SHADOWLINE_REDIS_URL=<hidden>: Value error, must be a redis://" in str(info.value)
    settings = load_settings(SharedSettings, redis_url="redis://:hunter22@127.0.0.1:6379/0")
    assert "hunter22" not in repr(settings)


def test_redis_url_needs_a_host(in_tmp_cwd: Path) -> None:
    with pytest.raises(SettingsError, match="must name a host"):
        load_settings(SharedSettings, redis_url="redis:///0")


def test_placeholder_admin_token_refused_outside_development(
    in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHADOWLINE_ENVIRONMENT", "production")
    monkeypatch.setenv("SHADOWLINE_REDIS_URL", "redis://:hunter2-s3cret@127.0.0.1:6379/0")
    with pytest.raises(SettingsError) as info:
        load_settings(ServiceSettings)
    assert str(info.value).splitlines() == [
        "invalid settings for ServiceSettings:",
        "  Value error, SHADOWLINE_ADMIN_TOKEN is still the placeholder; set a real secret "
        "when SHADOWLINE_ENVIRONMENT=production",
    ]
    monkeypatch.setenv("SHADOWLINE_ADMIN_TOKEN", "a-real-long-secret")
    assert load_settings(ServiceSettings).environment.value == "production"
    monkeypatch.setenv("SHADOWLINE_ADMIN_TOKEN", "short")
    with pytest.raises(SettingsError, match="at least 8 characters") as short:
        load_settings(ServiceSettings)
    assert "short'" not in str(short.value)
    assert "hunter2" not in str(short.value)


def test_stack_ports_are_range_checked(in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHADOWLINE_REDIS_PORT", "70000")
    with pytest.raises(SettingsError, match="SHADOWLINE_REDIS_PORT='70000': Input should be less"):
        load_settings(StackSettings)
