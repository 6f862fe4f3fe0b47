"""Strategies of odd command-line input for tests/cli/test_odd_inputs.py, and the rules that
say which of them are valid (written from docs/cli.md and docs/configuration.md, not from the
code under test)."""

from __future__ import annotations

import math
import re
import unicodedata

from hypothesis import strategies as st

CONTROL = "".join(map(chr, [*range(0x20), 0x7F, 0x85]))
SURROGATES = "\ud800\udbff\udc80\udcff\udfff"
UNICODE_DIGITS = "²³¹٠١٢٣۴५১๑໒༣၄៥᠆"  # isdigit() is true for these; int() takes some
SPACES = " \t\u00a0\u2003\u3000"
EMAIL_SHAPED = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
ASCII_DIGITS = re.compile(r"[0-9]+")
IDENTIFIER_KINDS = ("email", "user_id", "amplitude_id", "device_id")
MAX_IDENTIFIER = 1024

# Any text (surrogates and control characters included), text made of the awkward characters,
# and huge strings.
odd_text = st.one_of(
    st.text(st.characters(codec=None, exclude_categories=()), max_size=40),
    st.text(st.sampled_from(CONTROL + SURROGATES + UNICODE_DIGITS + SPACES + "ab9@.-_/\\'\"=%"), max_size=20),
    st.integers(1000, 3000).map(lambda n: "é" * n),
    st.sampled_from(["", " ", "-", "--", "=", "\x00", "\udcff", "a" * 5000]),
)
numbers = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.tuples(
        st.sampled_from(["", "+", "-", " ", "+ ", "0"]),
        st.integers(0, 10**20),
        st.sampled_from(["", " ", "\n", ".5", "e3", "_0"]),
    ).map(lambda t: f"{t[0]}{t[1]}{t[2]}"),
    st.text(st.sampled_from(UNICODE_DIGITS + "0123456789"), min_size=1, max_size=6),
    st.sampled_from(["inf", "-inf", "nan", "NaN", "1e309", "-1", "0", "1e-320", "0x10", "1_000", "٣"]),
)


def emails() -> st.SearchStrategy[str]:
    local = st.text(st.sampled_from("abcxyz.+_-é☃"), min_size=1, max_size=8)
    return st.builds(lambda a, b: f"{a}@{b}.example", local, st.text(st.sampled_from("abcdef"), min_size=1, max_size=6))


identifier_values = st.one_of(odd_text, numbers, emails())


def identifier_is_valid(kind: str, value: str) -> bool:
    """docs/cli.md: an identifier is non-empty text of at most 1024 characters, without control
    characters or invalid UTF-8; an email looks like one; an Amplitude ID is a positive integer."""
    v = value.strip()
    if not v or len(v) > MAX_IDENTIFIER or any(unicodedata.category(c) in ("Cc", "Cs") for c in v):
        return False
    if kind == "email":
        return EMAIL_SHAPED.fullmatch(v) is not None
    if kind == "amplitude_id":
        return ASCII_DIGITS.fullmatch(v) is not None and 0 < int(v) < 2**63
    return True


def identifier_messages(kind: str) -> set[str]:
    """Every line an identifier of ``kind`` may be refused with (none repeats the value)."""
    return {
        f"error: empty {kind}", f"error: {kind} longer than {MAX_IDENTIFIER} characters",
        f"error: {kind} is not valid UTF-8", f"error: {kind} contains a control character",
        "error: malformed email address", "error: an Amplitude ID must be a positive integer",
    }  # fmt: skip


# Environment values: what an environment can hold (no NUL; surrogates only as escaped bytes).
def env_text(value: str) -> str:
    return "".join(c for c in value if c != "\x00" and not ("\ud800" <= c < "\udc80" or "\udd00" <= c <= "\udfff"))


NUMERIC_ENV = {  # variable -> (low, high, low allowed)
    "AMPLITUDE_DSR_POLL_INTERVAL": (0.0, 31 * 86400.0, False),
    "AMPLITUDE_DSR_BUDGET_FRACTION": (0.0, 1.0, False),
    "AMPLITUDE_DSR_RATE_SCALE": (0.0, 1e6, False),
    "AMPLITUDE_DSR_MAX_LINGER": (0.0, 31 * 86400.0, True),
}
ENV_VALUES = {
    **dict.fromkeys(NUMERIC_ENV, numbers),
    "AMPLITUDE_API_KEY": odd_text, "AMPLITUDE_SECRET_KEY": odd_text,
    "AMPLITUDE_ORG_API_KEY": odd_text, "AMPLITUDE_ORG_SECRET_KEY": odd_text,
    "AMPLITUDE_REGION": st.one_of(odd_text, st.sampled_from(["us", "EU", " eu ", "mars", "u s"])),
    "AMPLITUDE_BASE_URL": st.one_of(odd_text, st.sampled_from(
        ["http://[::1", "ftp://x", "http://", "https://h:0", "https://h:99999", "//h", "http:///p", "garbage"])),
    "AMPLITUDE_DSR_DATABASE_URL": st.one_of(odd_text, st.sampled_from(
        ["garbage", "", "mysql://x/y", "postgresql://[::1", "sqlite://", "sqlite:///", "postgresql+asyncpg://h/d",
         "postgresql://h:99999/d", "sqlite:////proc/none/x.db", "sqlite+pysqlite:///x"])),
    "AMPLITUDE_DSR_REQUESTER": odd_text,
    "AMPLITUDE_DSR_CONFIG": odd_text,
}  # fmt: skip
env_values = st.sampled_from(sorted(ENV_VALUES)).flatmap(
    lambda name: st.tuples(st.just(name), ENV_VALUES[name].map(env_text))
)


def number_is_refused(name: str, value: str) -> bool:
    """Whether docs/configuration.md refuses ``value`` for the numeric variable ``name`` (only
    the certain cases: not a number at all, not finite, or outside its range)."""
    low, high, low_ok = NUMERIC_ENV[name]
    try:
        number = float(value)
    except ValueError:
        return not value.strip() or not any(c.isdigit() for c in value)
    return not math.isfinite(number) or number > high or number < low or (number == low and not low_ok)


TOML_KEYS = ["database_url", "poll_interval", "budget_fraction", "rate_scale", "requester", "max_linger", "regoin"]
toml_scalars = st.one_of(
    st.integers(-(10**6), 10**6).map(str), st.floats().map(repr), st.booleans().map(lambda b: str(b).lower()),
    st.text(max_size=10).map(lambda s: '"' + s.replace("\\", "").replace('"', "") + '"'),
    st.sampled_from(["[1, 2]", "{a = 1}", "inf", "nan", '"us"', '"EU"', '"x@example.com"']),
)  # fmt: skip


def _project(values: list[tuple[str, str]]) -> str:
    return "[[projects]]\n" + "".join(f"{k} = {v}\n" for k, v in values)


config_texts = st.one_of(
    st.lists(st.tuples(st.sampled_from(TOML_KEYS), toml_scalars), max_size=4).map(
        lambda kv: "".join(f"{k} = {v}\n" for k, v in dict(kv).items())
    ),
    st.lists(st.tuples(st.sampled_from(["name", "api_key", "secret_key", "region", "base_url", "app"]), toml_scalars),
             max_size=5).map(lambda kv: _project(list(dict(kv).items()))),
    st.sampled_from(["projects = 5\n", "org = 5\n", "[[org]]\napi_key = 1\n", "[org]\n", "[[projects]]\n",
                     "[[projects]\nname = \n", "\ufeffrate_scale = 1\n", 'requester = "\\u0000"\n']),
    odd_text,
)  # fmt: skip

COMMAND_OPTIONS = {
    "access": ["--email", "--user-id", "--amplitude-id", "--device-id", "--project", "--identity-map", "--out",
               "--regulation", "--max-wait", "--full-history", "--no-wait", "--json"],
    "delete": ["--email", "--user-id", "--amplitude-id", "--device-id", "--project", "--org-wide", "--direct",
               "--out", "--regulation", "--wait", "--max-wait", "--json"],
    "status": ["--json"], "cancel": ["--json"], "worker": ["--until-idle", "--executor-id", "--json"],
    "batch": ["--regulation", "--out", "--project", "--org-wide", "--direct", "--wait", "--identity-map", "--json"],
    "test-connection": ["--project", "--json"],
}  # fmt: skip
argv_tokens = st.sampled_from(sorted(COMMAND_OPTIONS)).flatmap(
    lambda command: st.lists(
        st.one_of(st.sampled_from([*COMMAND_OPTIONS[command], "--nope", "-x", "--help"]), odd_text, numbers, emails()),
        max_size=6,
    ).map(lambda rest: [command, *rest])
)
