"""The API's own description: Swagger UI served by the service (no CDN), an OpenAPI document
with the two ways to authenticate, the event schema ingest takes and problem+json errors."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api

pytestmark = pytest.mark.anyio


async def test_swagger_ui_loads_nothing_from_elsewhere(api: Api) -> None:
    page = await api.client.get("/docs")
    assert page.status_code == 200
    assert "/docs/assets/swagger-ui-bundle.js" in page.text and "/docs/assets/swagger-ui.css" in page.text
    assert "cdn." not in page.text and "https://" not in page.text.replace("https://swagger.io", "")
    assert '"validatorUrl": null' in page.text, "no badge fetched from validator.swagger.io"
    script = await api.client.get("/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert len(script.content) > 100_000
    assert (await api.client.get("/docs/assets/../../cli.py")).status_code == 404
    assert (await api.client.get("/docs/assets/VERSION")).status_code == 404
    assert (await api.client.get("/redoc")).status_code == 404, "ReDoc needs a CDN: not offered"


async def test_the_openapi_document_says_how_to_authenticate_and_what_errors_look_like(api: Api) -> None:
    document = (await api.client.get("/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["token"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["token"]["description"],
    }
    assert schemes["session"]["in"] == "cookie" and schemes["session"]["name"] == "auditrelay_session"
    paths = document["paths"]
    assert paths["/api/v1/destinations"]["get"]["security"] == [{"token": []}, {"session": []}]
    assert paths["/api/v1/events"]["post"]["security"] == [{"token": []}]
    assert "security" not in paths["/api/v1/schema/event"]["get"]
    ingest = paths["/api/v1/events"]["post"]
    body = ingest["requestBody"]["content"]
    assert {"application/json", "application/x-ndjson"} <= set(body)
    assert document["components"]["schemas"]["AuditEvent"]["required"] == ["action", "actor"]
    assert ingest["responses"]["202"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/IngestAnswer"
    }
    for path, operations in paths.items():
        for method, operation in operations.items():
            errors = operation["responses"]["default"]["content"]
            assert list(errors) == ["application/problem+json"], (method, path)
            assert "422" not in operation["responses"], "FastAPI's own error shape is never sent"
    assert "HTTPValidationError" not in document["components"]["schemas"]


async def test_every_answer_is_typed(api: Api) -> None:
    """Each 2xx JSON answer names a model of the document's components: none is a bare object
    (tests/e2e/test_answers_match_the_document.py checks real answers against them)."""
    document = (await api.client.get("/openapi.json")).json()
    schemas, paths = document["components"]["schemas"], document["paths"]
    typed = 0
    for path, operations in paths.items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if not status.startswith("2"):
                    continue
                content = answer.get("content", {})
                if "application/json" not in content:
                    continue
                schema = content["application/json"]["schema"]
                assert list(schema) == ["$ref"], (method, path, status, schema)
                assert schema["$ref"].removeprefix("#/components/schemas/") in schemas, (method, path)
                typed += 1
    assert typed > 30
    # Single sign-on answers with redirects, no body.
    assert list(paths["/api/v1/session/sso"]["get"]["responses"]) == ["302", "default"]
    assert list(paths["/api/v1/session/sso/callback"]["get"]["responses"]) == ["303", "default"]
    assert "content" not in paths["/api/v1/session/sso"]["get"]["responses"]["302"]
    assert schemas["Destination"]["additionalProperties"] is False
    assert "status" not in schemas["Destination"]["required"], "absent for a destination without status"
    assert schemas["BrowsedEvent"]["properties"]["event"]["allOf"] == [
        {"$ref": "#/components/schemas/AuditEvent"}
    ]
