"""Settings, built once at the edge (CLI entry, service factory) and passed down as values.

Sources, later ones winning: defaults, a TOML file (``AMPLITUDE_DSR_CONFIG`` or ``--config``),
environment variables (names in ``docs/configuration.md`` and ``docs/architecture.md#contracts``).

A TOML file can configure several projects of one organisation::

    database_url = "postgresql+psycopg://127.0.0.1:5432/test"
    budget_fraction = 0.75

    [[projects]]
    name = "web"
    api_key = "..."
    secret_key = "..."
    region = "us"

    [org]
    api_key = "..."
    secret_key = "..."
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from amplitude_dsr.errors import ConfigError

Region = Literal["us", "eu"]

DEFAULT_DATABASE_URL = "sqlite:///.amplitude-dsr/dsr.sqlite"
DEFAULT_POLL_INTERVAL = 3600.0


class Credentials(BaseModel):
    """An API key and secret key pair for one region. Secrets never appear in reprs."""

    model_config = ConfigDict(frozen=True)

    api_key: SecretStr
    secret_key: SecretStr
    region: Region = "us"
    base_url: str | None = None

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value


class ProjectConfig(Credentials):
    """Project-level keys: user search, user activity, events list, User Privacy v1."""

    name: str = "default"


class OrgConfig(Credentials):
    """Org-level keys (from Amplitude Support): the DSAR export API."""


class Settings(BaseModel):
    """Everything the application needs, as plain values."""

    model_config = ConfigDict(frozen=True)

    projects: tuple[ProjectConfig, ...] = ()
    org: OrgConfig | None = None
    database_url: str = DEFAULT_DATABASE_URL
    poll_interval: float = Field(DEFAULT_POLL_INTERVAL, gt=0)
    budget_fraction: float = Field(0.75, gt=0, le=1)
    rate_scale: float = Field(1.0, gt=0)
    requester: str = "amplitude-dsr"
    max_linger: float = Field(300.0, ge=0)  # seconds a partial deletion batch may wait for more IDs

    def project(self, name: str | None = None) -> ProjectConfig:
        """The named project, or the only/first one. Raises ConfigError if none is configured."""
        if not self.projects:
            raise ConfigError(
                "no Amplitude project configured: set AMPLITUDE_API_KEY and AMPLITUDE_SECRET_KEY "
                "or add [[projects]] to the config file"
            )
        if name is None:
            return self.projects[0]
        for project in self.projects:
            if project.name == name:
                return project
        raise ConfigError(f"no project named {name!r} in the configuration")


class _Env(BaseSettings):
    """Environment variables of the contract (``docs/architecture.md#contracts``)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    amplitude_api_key: str | None = None
    amplitude_secret_key: str | None = None
    amplitude_org_api_key: str | None = None
    amplitude_org_secret_key: str | None = None
    amplitude_region: str | None = None
    amplitude_base_url: str | None = None
    amplitude_dsr_database_url: str | None = None
    amplitude_dsr_poll_interval: str | None = None
    amplitude_dsr_budget_fraction: str | None = None
    amplitude_dsr_rate_scale: str | None = None
    amplitude_dsr_requester: str | None = None
    amplitude_dsr_max_linger: str | None = None
    amplitude_dsr_config: str | None = None


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build :class:`Settings` from the config file, the environment and explicit overrides.

    Raises :class:`ConfigError` with a one-line reason on any invalid value.
    """
    env = _Env()
    data: dict[str, Any] = {}
    path = config_file or env.amplitude_dsr_config
    if path:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from None
    if env.amplitude_region and env.amplitude_region not in ("us", "eu"):
        raise ConfigError("AMPLITUDE_REGION must be 'us' or 'eu'")
    region = env.amplitude_region
    if env.amplitude_api_key or env.amplitude_secret_key:
        if not (env.amplitude_api_key and env.amplitude_secret_key):
            raise ConfigError("set both AMPLITUDE_API_KEY and AMPLITUDE_SECRET_KEY")
        env_project: dict[str, Any] = {
            "name": "default",
            "api_key": env.amplitude_api_key,
            "secret_key": env.amplitude_secret_key,
        }
        data["projects"] = [env_project, *[p for p in data.get("projects", []) if p.get("name") != "default"]]
    if env.amplitude_org_api_key or env.amplitude_org_secret_key:
        if not (env.amplitude_org_api_key and env.amplitude_org_secret_key):
            raise ConfigError("set both AMPLITUDE_ORG_API_KEY and AMPLITUDE_ORG_SECRET_KEY")
        data["org"] = {"api_key": env.amplitude_org_api_key, "secret_key": env.amplitude_org_secret_key}
    for target in [*data.get("projects", []), *([data["org"]] if data.get("org") else [])]:
        if region and "region" not in target:
            target["region"] = region
        if env.amplitude_base_url:
            target["base_url"] = env.amplitude_base_url
    scalar_env = {
        "database_url": env.amplitude_dsr_database_url,
        "poll_interval": env.amplitude_dsr_poll_interval,
        "budget_fraction": env.amplitude_dsr_budget_fraction,
        "rate_scale": env.amplitude_dsr_rate_scale,
        "requester": env.amplitude_dsr_requester,
        "max_linger": env.amplitude_dsr_max_linger,
    }
    data.update({k: v for k, v in scalar_env.items() if v is not None})
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"invalid configuration at {where}: {first['msg']}") from None


def normalize_database_url(url: str) -> str:
    """The SQLAlchemy URL for ``url``: ``postgresql://`` gets the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def dbos_database_url(url: str) -> str:
    """The URL DBOS expects for the same database (it picks its own PostgreSQL driver)."""
    return normalize_database_url(url).replace("postgresql+psycopg://", "postgresql://", 1)
