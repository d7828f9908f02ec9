"""GET /: the web page (static files, no build step)."""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(tags=["page"])


@router.get("/", summary="The web page", response_class=FileResponse, include_in_schema=True,
            responses={200: {"content": {"text/html": {}}, "description": "the search page"}},
            description="A search box, results with audio players, scores and tag chips, and an upload "
                        "form once an API key is entered. Its script and style are under /static.")
async def page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")
