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

import base64
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from amplitude_dsr._checks import check_base_url, check_database_url, clean_text
from amplitude_dsr._checks import normalize_database_url as normalize_database_url  # noqa: PLC0414 (re-export)
from amplitude_dsr.errors import ConfigError

Region = Literal["us", "eu"]

DEFAULT_POLL_INTERVAL = 3600.0
REGIONS = ("us", "eu")
# Keys a TOML file may hold; anything else is a typo we refuse (``regoin = "eu"`` would silently
# give a US project).
TOML_KEYS = (
    "database_url", "poll_interval", "budget_fraction", "rate_scale", "requester", "max_linger", "retention_days",
    "deletion_path",
)  # fmt: skip
TOML_TABLES = ("projects", "org")
PROJECT_KEYS = ("name", "api_key", "secret_key", "region", "base_url")
ORG_KEYS = ("api_key", "secret_key", "region", "base_url")
ENV_SCALARS = {
    "database_url": "AMPLITUDE_DSR_DATABASE_URL",
    "poll_interval": "AMPLITUDE_DSR_POLL_INTERVAL",
    "budget_fraction": "AMPLITUDE_DSR_BUDGET_FRACTION",
    "rate_scale": "AMPLITUDE_DSR_RATE_SCALE",
    "requester": "AMPLITUDE_DSR_REQUESTER",
    "max_linger": "AMPLITUDE_DSR_MAX_LINGER",
    "data_key": "AMPLITUDE_DSR_DATA_KEY",
    "retention_days": "AMPLITUDE_DSR_RETENTION_DAYS",
    "deletion_path": "AMPLITUDE_DSR_DELETION_PATH",
}
MAX_SECONDS = 31 * 86400.0  # poll interval and linger: longer than any deletion job takes
MAX_RATE_SCALE = 1e6
DEFAULT_RETENTION_DAYS = 30.0
MAX_RETENTION_DAYS = 3650.0


def default_data_home() -> Path:
    """Per-user data directory: ``$XDG_DATA_HOME/amplitude-dsr``, else
    ``~/.local/share/amplitude-dsr`` (the same whatever the current directory is)."""
    base = os.environ.get("XDG_DATA_HOME") or ""
    root = Path(base) if base and Path(base).is_absolute() else Path.home() / ".local" / "share"
    return root / "amplitude-dsr"


def default_database_url() -> str:
    return f"sqlite:///{default_data_home() / 'dsr.sqlite'}"


class Credentials(BaseModel):
    """An API key and secret key pair for one region. Secrets never appear in reprs."""

    model_config = ConfigDict(frozen=True)

    api_key: SecretStr
    secret_key: SecretStr
    region: Region = "us"
    base_url: str | None = None

    @field_validator("region", mode="before")
    @classmethod
    def _region_any_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("api_key", "secret_key", mode="before")
    @classmethod
    def _usable_key(cls, value: Any) -> Any:
        return clean_text(value)

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        if value is None:
            return value
        clean_text(value)
        return check_base_url(value.strip()).rstrip("/")


class ProjectConfig(Credentials):
    """Project-level keys: user search, user activity, events list, User Privacy v1."""

    name: str = Field("default", max_length=200)

    @field_validator("name")
    @classmethod
    def _usable_name(cls, value: str) -> str:
        return str(clean_text(value))


class OrgConfig(Credentials):
    """Org-level keys (from Amplitude Support): the DSAR export API."""


class Settings(BaseModel):
    """Everything the application needs, as plain values."""

    model_config = ConfigDict(frozen=True)

    projects: tuple[ProjectConfig, ...] = ()
    org: OrgConfig | None = None
    database_url: str = Field(default_factory=default_database_url)
    poll_interval: float = Field(DEFAULT_POLL_INTERVAL, gt=0, le=MAX_SECONDS, allow_inf_nan=False)
    budget_fraction: float = Field(0.75, gt=0, le=1, allow_inf_nan=False)
    rate_scale: float = Field(1.0, gt=0, le=MAX_RATE_SCALE, allow_inf_nan=False)
    requester: str = Field("amplitude-dsr", max_length=200)
    # seconds a partial deletion batch may wait for more IDs
    max_linger: float = Field(300.0, ge=0, le=MAX_SECONDS, allow_inf_nan=False)
    # Fernet key(s) sealing DBOS checkpoints, comma-separated, the first seals (dsr/sealing.py);
    # None: a generated key kept in a 0600 file (beside a SQLite database)
    data_key: SecretStr | None = None
    # days a final request keeps its identifiers and checkpoints (dsr/retention.py)
    retention_days: float = Field(DEFAULT_RETENTION_DAYS, ge=0, le=MAX_RETENTION_DAYS, allow_inf_nan=False)

    # how a deletion reaches Amplitude when its request does not say (docs/deletion.md#two-paths)
    deletion_path: Literal["resolve-first", "direct"] = "resolve-first"

    @field_validator("data_key")
    @classmethod
    def _fernet_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _check_data_keys(value.get_secret_value())
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        return check_database_url(value)

    @field_validator("requester")
    @classmethod
    def _usable_requester(cls, value: str) -> str:
        return str(clean_text(value))

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
        shown = name if len(name) <= 80 else name[:80] + "…"
        raise ConfigError(f"no project named {shown!r} in the configuration")


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
    amplitude_dsr_data_key: str | None = None
    amplitude_dsr_retention_days: str | None = None
    amplitude_dsr_deletion_path: str | None = None
    amplitude_dsr_config: str | None = None


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build :class:`Settings` from the config file, the environment and explicit overrides.

    ``AMPLITUDE_BASE_URL`` and ``AMPLITUDE_REGION`` shape only what the environment configures
    (the ``default`` project of ``AMPLITUDE_API_KEY``, the org keys of ``AMPLITUDE_ORG_API_KEY``);
    ``AMPLITUDE_REGION`` is also the region of a TOML project that sets none. A TOML project sets
    its own ``base_url``. Raises :class:`ConfigError` with a one-line reason naming the variable
    or TOML key on any invalid value.
    """
    env = _Env()
    path = config_file or env.amplitude_dsr_config
    data = _read_toml(Path(path)) if path else {}
    where: dict[tuple[str | int, ...], str] = {}  # pydantic location -> what the user set
    for key in data:
        where[(key,)] = f"{path}: {key}"
    # Each TOML project's own label, kept with the table itself: the environment's project is
    # put first below, which moves the others' indexes.
    labels = {id(p): f"{path}: projects[{i}]" for i, p in enumerate(data.get("projects", []))}
    for key in data.get("org") or {}:
        where[("org", key)] = f"{path}: org.{key}"
    region = (env.amplitude_region or "").strip().lower() or None
    if region is not None and region not in REGIONS:
        raise ConfigError("AMPLITUDE_REGION: must be us or eu")
    for target in [*data.get("projects", []), *([data["org"]] if data.get("org") else [])]:
        if region and "region" not in target:
            target["region"] = region
    if env.amplitude_api_key or env.amplitude_secret_key:
        if not (env.amplitude_api_key and env.amplitude_secret_key):
            raise ConfigError("AMPLITUDE_API_KEY, AMPLITUDE_SECRET_KEY: set both")
        env_project = _env_credentials(env.amplitude_api_key, env.amplitude_secret_key, region, env, name="default")
        data["projects"] = [env_project, *[p for p in data.get("projects", []) if p.get("name") != "default"]]
        labels[id(env_project)] = "environment"
    for index, project in enumerate(data.get("projects", [])):
        label = labels.get(id(project), f"projects[{index}]")
        where[("projects", index)] = label
        for key in project:
            where[("projects", index, key)] = f"{label}.{key}"
        if label == "environment":
            where.update({("projects", index, "api_key"): "AMPLITUDE_API_KEY",
                          ("projects", index, "secret_key"): "AMPLITUDE_SECRET_KEY",
                          ("projects", index, "base_url"): "AMPLITUDE_BASE_URL",
                          ("projects", index, "region"): "AMPLITUDE_REGION"})  # fmt: skip
    if env.amplitude_org_api_key or env.amplitude_org_secret_key:
        if not (env.amplitude_org_api_key and env.amplitude_org_secret_key):
            raise ConfigError("AMPLITUDE_ORG_API_KEY, AMPLITUDE_ORG_SECRET_KEY: set both")
        data["org"] = _env_credentials(env.amplitude_org_api_key, env.amplitude_org_secret_key, region, env)
        org_vars = {"base_url": "AMPLITUDE_BASE_URL", "api_key": "AMPLITUDE_ORG_API_KEY",
                    "secret_key": "AMPLITUDE_ORG_SECRET_KEY", "region": "AMPLITUDE_REGION"}  # fmt: skip
        where.update({("org", key): var for key, var in org_vars.items()})
    for field_name, var in ENV_SCALARS.items():
        value = getattr(env, var.lower())
        if value is not None:
            data[field_name] = value
            where[(field_name,)] = var
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(first["loc"])
        label = where.get(loc) or where.get(loc[:-1]) or ".".join(str(p) for p in loc)
        if loc and loc[-1] == "region":
            raise ConfigError(f"{label}: must be us or eu") from None
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{label}: {message[:1].lower()}{message[1:]}") from None


def _env_credentials(api_key: str, secret_key: str, region: str | None, env: _Env, **extra: str) -> dict[str, Any]:
    values: dict[str, Any] = {"api_key": api_key, "secret_key": secret_key, **extra}
    if region:
        values["region"] = region
    if env.amplitude_base_url:
        values["base_url"] = env.amplitude_base_url
    return values


def _read_toml(path: Path) -> dict[str, Any]:
    """The config file's tables, with every key checked (an unknown key is an error)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read config file {path}: not UTF-8 text") from None
    except (OSError, ValueError) as exc:  # TOMLDecodeError is a ValueError, as is a NUL in the path
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    _known(path, "", data, (*TOML_KEYS, *TOML_TABLES))
    projects = data.get("projects", [])
    if not isinstance(projects, list) or not all(isinstance(p, dict) for p in projects):
        raise ConfigError(f"{path}: projects: must be [[projects]] tables")
    for index, project in enumerate(projects):
        _known(path, f"projects[{index}].", project, PROJECT_KEYS)
    org = data.get("org")
    if org is not None and not isinstance(org, dict):
        raise ConfigError(f"{path}: org: must be an [org] table")
    _known(path, "org.", org or {}, ORG_KEYS)
    return data


def _known(path: Path, prefix: str, table: dict[str, Any], allowed: tuple[str, ...]) -> None:
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{path}: unknown key {prefix}{key} (expected one of: {', '.join(allowed)})")


def _check_data_keys(value: str) -> None:
    """Every comma-separated part of a data key value is a Fernet key (32 url-safe base64 bytes).
    The message never quotes the value."""
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if not parts:
        raise ValueError("must hold at least one key")
    for index, part in enumerate(parts, start=1):
        try:
            raw = base64.urlsafe_b64decode(part.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            raw = b""
        if len(raw) != 32:
            raise ValueError(
                f"key {index} is not a Fernet key (32 url-safe base64-encoded bytes; "
                "`amplitude-dsr data-key` prints one)"
            )


def dbos_database_url(url: str) -> str:
    """The URL DBOS expects for the same database (it picks its own PostgreSQL driver)."""
    return normalize_database_url(url).replace("postgresql+psycopg://", "postgresql://", 1)
