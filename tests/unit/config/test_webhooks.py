"""Webhook endpoints: refused at settings load unless their URL is on the allow-list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.settings import Settings, SettingsError
from config.webhooks import WebhookConfigError, allow_rules, is_allowed, load_endpoints

SPEC = {"url": "https://hooks.example.org/medflow/in", "secret_env": "RIS_SECRET"}


def load(url: str, allow: str) -> Settings:
    endpoints = json.dumps({"ris": {**SPEC, "url": url}})
    return Settings.from_env({"MEDFLOW_WEBHOOKS": endpoints, "MEDFLOW_WEBHOOK_ALLOW": allow})


def test_an_endpoint_off_the_allow_list_is_refused_at_load_with_a_clear_error() -> None:
    with pytest.raises(SettingsError) as refused:
        load("https://elsewhere.example.com/in", "https://hooks.example.org/medflow/")
    assert str(refused.value) == (
        "webhook ris: https://elsewhere.example.com/in is not on MEDFLOW_WEBHOOK_ALLOW "
        "(add its host or a URL prefix there)"
    )
    with pytest.raises(SettingsError, match="not on MEDFLOW_WEBHOOK_ALLOW"):
        load(SPEC["url"], "")  # no allow-list: nothing is allowed


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.example.org/medflow/in", True),
        ("https://hooks.example.org/medflow", True),
        ("https://HOOKS.example.org:443/medflow/a/b?x=1", True),
        ("https://hooks.example.org/medflowx", False),  # a prefix ends at a segment
        ("https://hooks.example.org/other", False),
        ("http://hooks.example.org/medflow/in", False),  # another scheme
        ("https://hooks.example.org:8443/medflow/in", False),  # another port
        ("https://hooks.example.org.evil.net/medflow/in", False),  # text prefix, other host
        ("https://evil.net/medflow/in#hooks.example.org", False),
        ("http://127.0.0.1:8080/any/path", True),  # a host:port entry: any path
        ("https://127.0.0.1:8080/any/path", True),
        ("http://127.0.0.1:8081/any/path", False),
        ("https://ris.example.net/x", True),  # a bare host: its default port
        ("https://ris.example.net:444/x", False),
    ],
)
def test_allow_list_matches_by_parts_not_text(url: str, allowed: bool) -> None:
    rules = allow_rules("https://hooks.example.org/medflow/, 127.0.0.1:8080,ris.example.net")
    assert is_allowed(url, rules) is allowed


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({**SPEC, "url": "ftp://hooks.example.org/medflow/in"}, r"http\(s\) URL"),
        ({**SPEC, "url": "https://u:p@hooks.example.org/medflow/in"}, "credentials"),
        ({**SPEC, "url": "https://hooks.example.org/medflow/../admin"}, ". or .."),
        ({**SPEC, "url": "https://hooks.example.org/medflow/%2e%2e/admin"}, ". or .."),
        ({**SPEC, "secret": "inline"}, "environment variable"),
        ({**SPEC, "secret_env": "lower-case"}, "secret_env"),
        ({**SPEC, "events": ["image.done"]}, "events must be among"),
    ],
)
def test_malformed_endpoints_are_refused(spec: dict[str, object], message: str) -> None:
    with pytest.raises(WebhookConfigError, match=message):
        load_endpoints(json.dumps({"ris": spec}), "hooks.example.org")


def test_endpoints_from_a_file_and_their_secret_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "webhooks.json"
    path.write_text(json.dumps({"ris": SPEC}))
    (endpoint,) = load_endpoints(str(path), "https://hooks.example.org/medflow")
    assert (endpoint.name, endpoint.events) == ("ris", ("job.finished",))
    assert endpoint.secret({"RIS_SECRET": "s3cret"}) == "s3cret"
    with pytest.raises(WebhookConfigError, match="RIS_SECRET is not set"):
        endpoint.secret({})
    with pytest.raises(WebhookConfigError, match="cannot read"):
        load_endpoints(str(tmp_path / "missing.json"), "hooks.example.org")
    assert load_endpoints(None, None) == ()
