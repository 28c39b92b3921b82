"""The OpenAPI 3.1 document: valid, served without a key, and in step with the routes the
console and ingress applications register under /v1 (each way round)."""

from __future__ import annotations

import asyncio
import json

import pytest
from openapi_spec_validator import validate

from services.console.api import OPENAPI
from services.console.app import build_app
from services.core.settings import Settings
from services.ingress import app as ingress_app

METHODS = {"get", "put", "post", "delete", "patch"}


@pytest.fixture(scope="module")
def document() -> dict:
    return json.loads(OPENAPI.read_text(encoding="utf-8"))


def v1_routes(app) -> set[tuple[str, str]]:
    out = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith("/v1/") and route.method != "HEAD":
            out.add((route.method, path))
    return out


def documented(doc: dict) -> set[tuple[str, str]]:
    return {(m.upper(), path) for path, item in doc["paths"].items() for m in item if m in METHODS}


class FakeProducer:
    def __init__(self, settings) -> None:
        pass

    def check(self) -> None:
        pass

    def close(self, timeout: float = 5) -> None:
        pass


@pytest.fixture
def ingress_routes(sqlite_db, monkeypatch) -> set[tuple[str, str]]:
    from services.core import webservice

    monkeypatch.setattr(webservice, "AsyncProducer", FakeProducer)
    settings = Settings(database_url=sqlite_db.url, kafka_bootstrap="127.0.0.1:1")
    app = asyncio.run(ingress_app.create_app(settings))
    return v1_routes(app)


def test_the_document_is_a_valid_openapi_3_1_document(document):
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_v1_route_of_the_console_and_ingress_is_documented_and_nothing_else(
        document, console, ingress_routes):
    registered = v1_routes(build_app(console)) | ingress_routes
    assert registered - documented(document) == set(), "routes missing from openapi.json"
    assert documented(document) - registered == set(), "openapi.json documents routes nobody serves"


def test_the_send_api_is_documented_on_the_ingress_server(document, ingress_routes):
    for _method, path in ingress_routes:
        assert "8080" in document["paths"][path]["servers"][0]["url"], path


def test_every_operation_is_secured_by_an_api_key_except_the_document_itself(document):
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert {"bearerAuth": []} in document["security"]
    for path, item in document["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            if path == "/v1/openapi.json":
                assert op["security"] == []
            else:
                assert "security" not in op, f"{method} {path} overrides the key requirement"
                assert "401" in op["responses"], f"{method} {path} does not say it can be refused"


def test_every_error_answer_has_the_one_error_shape_with_an_example(document):
    responses = document["components"]["responses"]
    for name, r in responses.items():
        content = r["content"]["application/json"]
        assert content["schema"] == {"$ref": "#/components/schemas/Error"}, name
        assert content["example"]["error"], name
    for path, item in document["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            for code, r in op["responses"].items():
                if code.startswith(("4", "5")):
                    assert r["$ref"].startswith("#/components/responses/"), f"{method} {path} {code}"


def test_every_request_body_has_a_schema_and_an_example(document):
    schemas = document["components"]["schemas"]
    for path, item in document["paths"].items():
        for method, op in item.items():
            if method not in METHODS or "requestBody" not in op:
                continue
            for media, content in op["requestBody"]["content"].items():
                example = content.get("example")
                if example is None and "$ref" in content["schema"]:
                    example = schemas[content["schema"]["$ref"].rsplit("/", 1)[1]].get("examples")
                assert example is not None, f"{method} {path} {media} has no example"


def test_the_document_is_served_at_v1_openapi_json_without_a_key(browser, document):
    resp, body = browser.get("/v1/openapi.json")
    assert resp.status == 200
    assert resp.content_type == "application/json"
    assert json.loads(body) == document
