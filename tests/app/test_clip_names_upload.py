"""The name an upload is stored under is the one `index add` stores for a file of that name on disk
(index/store/names.py clip_name, whichever way a clip comes in): a direction override, macOS's decomposed
form, a line break, a tab, an escape character."""

from app.compose import open_collection
from app.settings import Settings
from index.ingest.builder import index_paths
from tests.app.conftest import upload
from tests.index.ingesting import ODD_FILES, odd_files


def test_an_upload_and_index_add_store_a_file_under_the_same_name(client, app_settings, retriever, tmp_path):
    files = odd_files(tmp_path / "clips")
    uploaded = {}
    for case, path in files.items():
        r = upload(client, path.name, path.read_bytes())  # httpx sends its control characters as %XX
        assert r.status_code == 201, r.text
        uploaded[case] = r.json()["name"]
    assert uploaded == {case: stored for case, (_, stored) in ODD_FILES.items()}
    library = Settings(**{**app_settings.model_dump(), "data_dir": tmp_path / "library"})
    with open_collection(library, retriever) as collection:
        assert index_paths(collection, [tmp_path / "clips"], progress=False).added == len(files)
        by_path = {r.location: r.name for r in collection.list(limit=len(files))}
    assert {case: by_path[str(path.resolve())] for case, path in files.items()} == uploaded
