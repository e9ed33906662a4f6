"""The API's documentation pages, served by the service itself: Swagger UI's assets are
vendored (`static/swagger-ui`, from the npm package swagger-ui-dist, see its VERSION), so
`/docs` works on a network without internet. ReDoc, which only loads from a CDN, is not
offered."""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.openapi.utils import get_openapi
from starlette.responses import HTMLResponse, Response

from auditrelay.errors import NotFound
from auditrelay.events import event_schema

router = APIRouter(include_in_schema=False)

ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url,
        title=f"{request.app.title} API",
        oauth2_redirect_url="/docs/oauth2-redirect",
        swagger_js_url="/docs/assets/swagger-ui-bundle.js",
        swagger_css_url="/docs/assets/swagger-ui.css",
        swagger_favicon_url="/docs/assets/favicon-32x32.png",
        # No validator badge: Swagger UI would otherwise fetch one from validator.swagger.io.
        swagger_ui_parameters={"persistAuthorization": False, "validatorUrl": None},
    )


@router.get("/docs/oauth2-redirect")
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/docs/assets/{asset}")
async def swagger_asset(asset: str) -> Response:
    media_type = ASSETS.get(asset)
    if media_type is None:  # only the files named: nothing else of the package is served
        raise NotFound(f"no asset {asset!r}")
    content = resources.files("auditrelay").joinpath("api/static/swagger-ui", asset).read_bytes()
    return Response(content, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An error, as RFC 9457 problem details; `errors` names each field at fault.",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {
                    "index": {"type": "integer", "description": "the event's position, for ingest"},
                    "field": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    },
}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with what it cannot know: every error is problem+json (its
    validation errors included, which FastAPI would describe in its own shape), the event
    schema ingest takes, and the two ways to sign requests (declared by `api.auth`)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Problem"] = PROBLEM_SCHEMA
    event = {k: v for k, v in event_schema().items() if k not in ("$schema", "$id")}
    schemas["AuditEvent"] = event
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            responses["default"] = {"description": "An error: RFC 9457 problem details", "content": problem}
    app.openapi_schema = document
    return document
