"""The OpenAPI document lists exactly the app's routes, so neither can drift from the other."""

from __future__ import annotations

import re


def test_openapi_lists_every_route(client, app):
    document = client.get("/openapi.json").json
    assert document["openapi"].startswith("3.1")
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    routed = {
        (method, re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule))
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    assert documented == routed


def test_every_v1_operation_documents_its_errors(client):
    document = client.get("/openapi.json").json
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/v1/"):
                assert {"401", "429"} <= set(operation["responses"]), (method, path)
            else:
                assert operation["security"] == [], (method, path)


def test_every_schema_reference_resolves(client):
    document = client.get("/openapi.json").json
    text = str(document)
    for kind, name in re.findall(r"#/components/(\w+)/(\w+)", text):
        assert name in document["components"][kind], name
