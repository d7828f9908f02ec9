import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread: on a CPU shared with other work a second thread mostly waits (measured here under
    load: a planted training step 65 ms with 2 threads, 1 ms with 1; a 0.5 s PaSST clip 1.3 s vs 0.4 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
