"""One shape for every API error: ``{"errors": {"<name>": "<what is wrong>"}}``, one string per name.

* 400, a request that does not validate: one entry per field (``placements[1]`` for a list item; ``body``
  for the body as a whole: not JSON, not an object; an empty body reads as ``{}``, so the required fields
  are named).
* Any other error a DRF view raises (401, 403, 404, 405, 406, 415, 429, ...): its status and headers
  (``WWW-Authenticate``, ``Retry-After``, ``Allow``) as DRF sets them, the message under ``detail``.
* Under ``/api/``, what no API view answers (a path that matches no endpoint, a 405 or 500 from Django
  itself) is JSON too (``path`` for a 404, ``detail`` otherwise); elsewhere the site's HTML pages stay.
  A write (POST, PUT, ...) to an endpoint's path without its trailing slash is a 404 that names the
  path: Django's ``APPEND_SLASH`` cannot redirect it (a 500 in DEBUG, a 301 that drops the body otherwise).

``api_exception_handler`` is DRF's ``EXCEPTION_HANDLER``; ``api_errors_json`` is a middleware. The
``/collect`` beacon and ``/api/v1/events`` answer their own documented bodies (``tracking/views.py``) and
are not changed here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.urls import is_valid_path
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from inference.api import ApiErrorsSerializer

BODY = "body"
ERRORS_SCHEMA = ApiErrorsSerializer  # the body's schema (inference.api, defined in inference.rest.errors)
_MIDDLEWARE_MESSAGES = {404: ("path", "no such API endpoint"), 500: ("detail", "internal server error")}


def _flatten(detail: Any, name: str, out: dict[str, str]) -> None:
    """DRF's nested error detail as ``{name: message}``; a name's several messages joined by a space."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            if isinstance(key, int):
                child = f"{name}[{key}]"
            elif not name and key == api_settings.NON_FIELD_ERRORS_KEY:
                child = BODY
            else:
                child = f"{name}.{key}" if name else str(key)
            _flatten(value, child, out)
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            if detail:
                out[name or BODY] = " ".join(str(item) for item in detail)
        else:
            for index, item in enumerate(detail):
                _flatten(item, f"{name}[{index}]", out)
    else:
        out[name or BODY] = str(detail)


def api_errors_body(exc: exceptions.APIException) -> dict[str, dict[str, str]]:
    errors: dict[str, str] = {}
    if isinstance(exc, exceptions.ValidationError):
        _flatten(exc.detail, "", errors)
    elif isinstance(exc, exceptions.ParseError):
        errors[BODY] = str(exc.detail)
    elif isinstance(exc.detail, str):
        errors["detail"] = str(exc.detail)
    else:
        _flatten(exc.detail, "detail", errors)
    return {"errors": errors or {BODY: "invalid request"}}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler (status, headers, Django's Http404/PermissionDenied mapped), then our body shape.
    ``None`` (an unexpected exception) lets Django answer 500, which ``api_errors_json`` makes JSON."""
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if not isinstance(exc, exceptions.APIException):  # Http404 / PermissionDenied: DRF mapped them
        exc = exceptions.NotFound() if response.status_code == 404 else exceptions.PermissionDenied()
    response.data = api_errors_body(exc)
    return response


def api_errors_json(
    get_response: Callable[[HttpRequest], HttpResponseBase],
) -> Callable[[HttpRequest], HttpResponseBase]:
    """Under ``/api/``: a 404, 405 or 500 that is not already JSON becomes ``{"errors": {...}}``."""

    def middleware(request: HttpRequest) -> HttpResponseBase:
        response = get_response(request)
        status = response.status_code
        if status not in (301, 404, 405, 500) or not request.path.startswith("/api/"):
            return response
        if status in (301, 500) and _slash_missing(request):
            hint = f"no such API endpoint (did you mean {request.path}/?)"
            return JsonResponse({"errors": {"path": hint}}, status=404)
        if status == 301:
            return response
        if response.get("Content-Type", "").startswith("application/json"):
            return response
        name, problem = _MIDDLEWARE_MESSAGES.get(status, ("detail", f"method {request.method} not allowed"))
        replaced = JsonResponse({"errors": {name: problem}}, status=status)
        if response.has_header("Allow"):
            replaced["Allow"] = response["Allow"]
        return replaced

    return middleware


def _slash_missing(request: HttpRequest) -> bool:
    """A write whose path names an endpoint once a ``/`` is appended (what ``APPEND_SLASH`` acts on).
    Checked only for a 301 or 500 answer, so the API's own paths (no trailing slash) pay nothing."""
    path = request.path_info
    return (
        request.method not in ("GET", "HEAD")
        and not path.endswith("/")
        and not is_valid_path(path)
        and is_valid_path(f"{path}/")
    )
