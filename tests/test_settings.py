"""The one settings object: defaults, clear errors naming the variable, the secret key."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from dutydesk.settings import Settings, SettingsError, get_settings
from tests.conftest import clear_caches


def test_defaults_keep_everything_in_the_home(home: Path) -> None:
    settings = get_settings()
    assert settings.home_path == home.resolve()
    assert settings.effective_database_url == f"sqlite:///{home.resolve() / 'dutydesk.sqlite'}"
    assert settings.effective_broker_url == f"sqla+sqlite:///{home.resolve() / 'broker.sqlite'}"


def test_default_home_is_var_in_the_working_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DUTYDESK_HOME")
    clear_caches()
    assert get_settings().home == Path("./var")


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("DUTYDESK_DATABASE_URL", "mysql://db/x", "must start with one of sqlite, postgresql"),
        ("DUTYDESK_BROKER_URL", "ftp://x", "scheme must be one of"),
        ("DUTYDESK_SESSION_HOURS", "forever", "valid integer"),
        ("DUTYDESK_SESSION_HOURS", "0", "greater than or equal to 1"),
        ("DUTYDESK_LOG_LEVEL", "LOUD", "DEBUG"),
        ("DUTYDESK_BASE_URL", "desk.example", "http://"),
        ("DUTYDESK_TICK_SECONDS", "-1", "greater than 0"),
    ],
)
def test_a_wrong_setting_is_refused_naming_the_variable(
    variable: str, value: str, says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    clear_caches()
    with pytest.raises(SettingsError) as error:
        get_settings()
    assert variable in str(error.value)
    assert says in str(error.value)


def test_settings_that_contradict_each_other_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUTYDESK_JOB_HEARTBEAT_SECONDS", "30")
    monkeypatch.setenv("DUTYDESK_JOB_STALE_SECONDS", "40")
    clear_caches()
    with pytest.raises(SettingsError, match="DUTYDESK_JOB_STALE_SECONDS must be more than twice"):
        get_settings()


def test_secret_key_is_generated_once_and_kept_private(home: Path) -> None:
    first = get_settings().signing_key()
    clear_caches()
    second = get_settings().signing_key()
    assert first == second
    assert len(first) >= 48
    key_file = home / "secret.key"
    assert key_file.read_text() == first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


@pytest.mark.parametrize("placeholder", ["changeme", "secret", "short-but-not-a-word"])
def test_placeholder_secret_key_is_refused_at_start(
    placeholder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dutydesk.web.app import create_app

    monkeypatch.setenv("DUTYDESK_SECRET_KEY", placeholder)
    clear_caches()
    with pytest.raises(SettingsError, match="DUTYDESK_SECRET_KEY looks like a placeholder"):
        create_app()


def test_a_long_configured_secret_key_is_used_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUTYDESK_SECRET_KEY", "k" * 40)
    clear_caches()
    assert get_settings().signing_key() == "k" * 40


def test_every_setting_has_help_text() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, f"DUTYDESK_{name.upper()} has no help text"
