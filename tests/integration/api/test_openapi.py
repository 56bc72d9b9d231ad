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


def integer_parameters(document):
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query" and parameter["schema"].get("type") == "integer":
                    yield method, path, parameter["name"], parameter["schema"]


def test_every_integer_parameter_states_the_range_the_server_enforces(client, keys, make_job):
    # Issue 9: a client built from the document never sends what is refused, and the edges the
    # document states are the server's: just inside is taken, just outside is a 400.
    document = client.get("/openapi.json").json
    job = make_job(1, owner="admin")
    checked = set()
    for method, path, name, schema in integer_parameters(document):
        assert method == "get" and {"minimum", "maximum"} <= set(schema), (path, name)
        url = path.replace("{job_id}", job.id)
        for value, refused in (
            (schema["minimum"], False),
            (schema["maximum"], False),
            (schema["minimum"] - 1, True),
            (schema["maximum"] + 1, True),
        ):
            response = client.get(f"{url}?{name}={value}", headers=keys.auth("admin"))
            assert (response.status_code == 400) is refused, (path, name, value, response.json)
        checked.add(name)
    assert checked == {"limit", "after", "after_seq"}


def test_the_document_states_the_parts_cap_and_body_errors(env):
    from dataclasses import replace

    from api.app import create_app

    app = create_app(replace(env.settings, max_form_parts=50))
    document = app.test_client().get("/openapi.json").json
    submit = document["paths"]["/v1/jobs"]["post"]
    form = submit["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["model"]
    assert form["properties"]["files"]["maxItems"] == 50 - 3  # model, seal, deadline
    json_body = document["components"]["schemas"]["SubmitRequest"]
    assert json_body["required"] == ["model"]
    assert json_body["properties"]["images"]["maxItems"] == 50
    for path, method in [
        ("/v1/jobs", "post"),
        ("/v1/jobs/{job_id}/images", "post"),
        ("/v1/infer", "post"),
        ("/v1/models", "post"),
    ]:
        operation = document["paths"][path][method]
        assert {"408", "413", "415", "429", "503"} <= set(operation["responses"]), path
        assert set(operation["requestBody"]["content"]) <= {
            "multipart/form-data",
            "application/json",
        }
    assert "MODEL_NOT_SERVED" in submit["responses"]["503"]["description"]


def test_uri_length_and_image_count_are_the_stated_ones(client, keys, api_settings):
    document = client.get("/openapi.json").json
    images = document["components"]["schemas"]["SubmitRequest"]["properties"]["images"]
    longest = images["items"]["properties"]["uri"]["maxLength"]
    auth = keys.auth("submitter")

    def submit(uris):
        body = {"model": "tiny", "images": [{"uri": u} for u in uris]}
        return client.post("/v1/jobs", json=body, headers=auth)

    at_limit = submit(["file:///" + "a" * (longest - len("file:///"))])
    assert at_limit.status_code == 422, at_limit.json  # taken, then refused for its root
    over = submit(["file:///" + "a" * (longest + 1 - len("file:///"))])
    assert over.status_code == 400 and over.json["error"]["details"]["index"] == 0
    too_many = submit(["file:///x"] * (images["maxItems"] + 1))
    assert too_many.status_code == 413, too_many.json
    assert too_many.json["error"]["details"] == {"max_images": api_settings.max_form_parts}
