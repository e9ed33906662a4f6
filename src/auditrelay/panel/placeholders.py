"""The sections not built yet: a page that says so and where to go instead."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from auditrelay.panel.web import Form, Handler, Visitor, layout, page, panel

router = APIRouter(prefix="/admin", include_in_schema=False)

PLACEHOLDERS = {
    "organizations": ("Organizations", "Administration", True),
    "people": ("People", "Administration", True),
    "api-tokens": ("API tokens", "Administration", True),
}


def _placeholder(section: str) -> Handler:
    title, group, managers_only = PLACEHOLDERS[section]

    @panel(manager=managers_only)
    async def show(request: Request, who: Visitor, form: Form | None) -> Response:
        return page(request, "placeholder.html", title=title, group=group, **layout(who, section))

    show.__name__ = "placeholder_" + section.replace("-", "_")
    return show


for _section in PLACEHOLDERS:
    router.add_api_route(f"/{_section}", _placeholder(_section), methods=["GET"])
