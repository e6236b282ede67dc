"""``GET /edge/model.json``: the edge model file the browsers of edge-mode visitors score with.

The same bytes for every visitor (no visitor id, no cookie read): the newest file written by
``manage.py edge_model_export`` under ``INFERENCE["MODEL_DIR"]/edge/``, with its version as the ETag
so that a browser revalidates cheaply. 404 before the first export (the tracker then keeps the
profile and shows no interests).
"""

from __future__ import annotations

from pathlib import Path

from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseNotModified, JsonResponse
from django.views.decorators.http import require_GET

from inference.conf import inference_setting
from inference.models.edge import edge_file_latest


def edge_directory() -> Path:
    return Path(str(inference_setting("MODEL_DIR"))) / "edge"


@require_GET
def edge_model_file(request: HttpRequest) -> HttpResponse:
    path = edge_file_latest(edge_directory())
    if path is None:
        return JsonResponse({"errors": {"edge_model": "no edge model exported yet"}}, status=404)
    etag = f'"{path.stem}"'
    if request.headers.get("If-None-Match") == etag:
        return HttpResponseNotModified()
    response = FileResponse(path.open("rb"), content_type="application/json")
    response["ETag"] = etag
    response["Cache-Control"] = "public, max-age=300"
    return response
