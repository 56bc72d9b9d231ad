"""The webhook endpoints MedFlow may call, and the allow-list every one of them must be on.

``MEDFLOW_WEBHOOKS`` is a JSON object, inline or in the file it names::

    {"ris": {"url": "https://hooks.example.org/medflow", "secret_env": "RIS_WEBHOOK_SECRET",
             "events": ["job.finished"]}}

``MEDFLOW_WEBHOOK_ALLOW`` is a comma-separated allow-list: URL prefixes
(``https://hooks.example.org/medflow/``: same scheme, host and port, path under the prefix) or
host names (``hooks.example.org``, ``127.0.0.1:8080``: any path, http or https). It is a setting
of its own so that the deployment's policy is not edited with the endpoints. An endpoint whose
URL is not on it is refused when the settings load, so a process never starts with one; the
sender never follows a redirect, so it contacts nothing else. Secrets are never in the JSON:
``secret_env`` names the environment variable that holds one (read when sending).
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit

EVENTS = ("job.finished",)  # what an endpoint may subscribe to
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_ENV = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_DEFAULT_PORTS = {"http": 80, "https": 443}


class WebhookConfigError(ValueError):
    """MEDFLOW_WEBHOOKS or MEDFLOW_WEBHOOK_ALLOW is malformed or unsafe (raised at start-up)."""


@dataclass(frozen=True)
class Endpoint:
    name: str
    url: str
    secret_env: str
    events: tuple[str, ...]

    def secret(self, environ: Mapping[str, str] | None = None) -> str:
        value = (os.environ if environ is None else environ).get(self.secret_env, "")
        if not value:
            raise WebhookConfigError(f"webhook {self.name}: {self.secret_env} is not set")
        return value


@functools.lru_cache(maxsize=4)
def configured_endpoints(value: str | None, allow: str | None) -> tuple[Endpoint, ...]:
    """The endpoints of the settings, read once per process."""
    return load_endpoints(value, allow)


def load_endpoints(value: str | None, allow: str | None) -> tuple[Endpoint, ...]:
    """Parse and check ``MEDFLOW_WEBHOOKS`` against ``MEDFLOW_WEBHOOK_ALLOW`` (none: none)."""
    if not value:
        return ()
    data = _read(value)
    if not isinstance(data, dict):
        raise WebhookConfigError("MEDFLOW_WEBHOOKS must be a JSON object of endpoints by name")
    rules = allow_rules(allow)
    return tuple(_endpoint(name, spec, rules) for name, spec in sorted(data.items()))


def allow_rules(allow: str | None) -> tuple[SplitResult, ...]:
    """Each allow-list entry as URL parts; a bare host is read as a URL with no scheme."""
    rules = []
    for entry in (allow or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        parts = urlsplit(entry if "://" in entry else f"//{entry}")
        if parts.scheme not in ("", "http", "https") or not parts.hostname:
            raise WebhookConfigError(f"MEDFLOW_WEBHOOK_ALLOW: {entry!r} is not a host or URL")
        rules.append(parts)
    return tuple(rules)


def is_allowed(url: str, rules: tuple[SplitResult, ...]) -> bool:
    """Whether ``url`` is under one of ``rules`` (compared part by part, never as text, so
    ``https://allowed.example.evil.org`` is not under ``https://allowed.example``)."""
    target = urlsplit(url)
    return any(_under(target, rule) for rule in rules)


def _under(target: SplitResult, rule: SplitResult) -> bool:
    if (target.hostname or "").lower() != (rule.hostname or "").lower():
        return False
    if _port(target) != _port(rule, target.scheme):  # a bare host: its default port unless named
        return False
    if not rule.scheme:  # a host name: any path on it
        return True
    if target.scheme != rule.scheme:
        return False
    prefix = rule.path or "/"
    return target.path == prefix.rstrip("/") or target.path.startswith(
        prefix if prefix.endswith("/") else prefix + "/"
    )


def _port(parts: SplitResult, scheme: str | None = None) -> int | None:
    return parts.port or _DEFAULT_PORTS.get(parts.scheme or scheme or "")


def _read(value: str) -> Any:
    text = value
    if not value.lstrip().startswith("{"):
        try:
            text = Path(value).read_text(encoding="utf-8")
        except OSError as exc:
            raise WebhookConfigError(f"MEDFLOW_WEBHOOKS: cannot read {value}: {exc}") from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        raise WebhookConfigError(f"MEDFLOW_WEBHOOKS: not JSON: {exc}") from exc


def _endpoint(name: str, spec: Any, rules: tuple[SplitResult, ...]) -> Endpoint:
    if not _NAME.match(name):
        raise WebhookConfigError(f"webhook {name!r}: names are 1-32 of a-z, 0-9, - and _")
    if not isinstance(spec, dict):
        raise WebhookConfigError(f"webhook {name}: must be an object")
    if "secret" in spec:
        raise WebhookConfigError(f"webhook {name}: the secret goes in an environment variable")
    url, secret_env = spec.get("url"), spec.get("secret_env")
    events = tuple(spec.get("events", EVENTS))
    if not isinstance(secret_env, str) or not _ENV.match(secret_env):
        raise WebhookConfigError(f"webhook {name}: secret_env must name an environment variable")
    if not events or any(event not in EVENTS for event in events):
        raise WebhookConfigError(f"webhook {name}: events must be among {list(EVENTS)}")
    return Endpoint(name, _url(name, url, rules), secret_env, events)


def _url(name: str, url: Any, rules: tuple[SplitResult, ...]) -> str:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        raise WebhookConfigError(f"webhook {name}: url must be an http(s) URL")
    if parts.username or parts.password or parts.fragment:
        raise WebhookConfigError(f"webhook {name}: url may not carry credentials or a fragment")
    if any(unquote(segment) in (".", "..") for segment in parts.path.split("/")):
        raise WebhookConfigError(f"webhook {name}: url may not hold . or .. segments")
    if not is_allowed(url, rules):
        raise WebhookConfigError(
            f"webhook {name}: {parts.scheme}://{parts.netloc}{parts.path} is not on "
            "MEDFLOW_WEBHOOK_ALLOW (add its host or a URL prefix there)"
        )
    return str(url)
