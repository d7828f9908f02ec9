"""Two processes writing one clip's metadata at once (the service's PATCH beside `index reread-metadata` or
`index add`): each change is made from the clip as it is when it is written, so neither undoes the other's.
Two collections over one data directory stand for the two processes (each its own store and lock)."""

import pytest

from index.collection import REWRITE_TRIES, Collection
from index.faiss.store import FaissStore
from index.store.contract import ClipChanged
from index.store.metadata import Metadata
from tests.index.store_fixtures import SPEC, fill, unit_vectors


@pytest.fixture
def two(tmp_path):
    data = tmp_path / "data"
    first, second = FaissStore(data, SPEC), FaissStore(data, SPEC)
    [clip_id] = fill(first, unit_vectors(1))
    yield clip_id, Collection(first, None, data_dir=data), Collection(second, None, data_dir=data)  # type: ignore[arg-type]
    first.close()
    second.close()


def test_an_edit_made_while_another_process_wrote_the_clip_is_made_again_from_its_write(two):
    """The other process's description was lost: this edit was written from the record read before it."""
    clip_id, here, there = two
    calls = []

    def add_a_tag(meta: Metadata) -> Metadata:
        calls.append(meta)
        if len(calls) == 1:  # between this edit's read and its write, the other process edits the clip
            there.edit_metadata(clip_id, lambda m: Metadata.of(description="typed there", tags=m.tags))
        return Metadata.of(description=meta.description, tags=[*meta.tags, "here"])

    record = here.edit_metadata(clip_id, add_a_tag)
    assert len(calls) == 2 and calls[1].description == "typed there"
    assert record.meta.description == "typed there" and record.meta.tags == ("here",)
    assert there.store.get(clip_id).meta == record.meta


def test_a_file_read_again_while_the_user_edits_the_clip_keeps_the_edit(two):
    """`index reread-metadata` beside a PATCH: the user's edit, answered 200, was reverted by the reread's
    write of what it had read before it."""
    clip_id, here, there = two
    real = here.store.get
    reads = []

    def get(id_):
        record = real(id_)
        reads.append(record)
        if len(reads) == 1:  # the reread has read the clip; the user's edit lands before its write
            there.edit_metadata(clip_id, lambda m: Metadata.of(description="my edit", tags=["mine"]))
        return record

    here.store.get = get  # type: ignore[method-assign]
    record = here.take_file_metadata(clip_id, Metadata.of(description="the file's", tags=["filed"]))
    assert len(reads) == 2
    assert record.meta.description == "my edit" and set(record.meta.tags) == {"mine", "filed"}


def test_a_clip_that_keeps_changing_is_said_and_left_as_the_other_process_wrote_it(two):
    clip_id, here, there = two
    n = []

    def always_edited_there(meta: Metadata) -> Metadata:
        n.append(1)
        there.edit_metadata(clip_id, lambda m: Metadata.of(description=f"there {len(n)}"))
        return Metadata.of(description="here")

    with pytest.raises(ClipChanged, match="kept changing"):
        here.edit_metadata(clip_id, always_edited_there)
    assert len(n) == REWRITE_TRIES and there.store.get(clip_id).meta.description == f"there {REWRITE_TRIES}"
