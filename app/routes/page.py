"""GET /: the web page (static files, no build step)."""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(tags=["page"])


@router.head("/", include_in_schema=False)
@router.get("/", summary="The web page", response_class=FileResponse, include_in_schema=True,
            responses={200: {"content": {"text/html": {}}, "description": "the search page"}},
            description="A search box with a vector / keyword / hybrid switch and duration and tag filters, "
                        "results with audio players, scores, tag chips and the user's metadata, and, once "
                        "an API key is entered, an upload form and a metadata editor on each result. Its "
                        "scripts and styles are under /static.")
async def page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")
