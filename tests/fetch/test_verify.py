import hashlib

import pytest

from retrieval.errors import ModelNotFound, WeightsMismatch
from retrieval.fetch.verify import Pin, check_file


@pytest.fixture
def blob(tmp_path):
    data = bytes(range(256)) * 1000
    path = tmp_path / "w.bin"
    path.write_bytes(data)
    return path, data


def test_good_file_is_accepted_and_digest_matches_hashlib(blob):
    path, data = blob
    digest = check_file(path, Pin(sha256=hashlib.sha256(data).hexdigest(), size=len(data)))
    assert digest.sha256 == hashlib.sha256(data).hexdigest()
    assert digest.size == len(data)


def test_pin_in_upper_case_hex_is_accepted(blob):
    path, data = blob
    check_file(path, Pin(sha256=hashlib.sha256(data).hexdigest().upper()))


def test_one_flipped_byte_is_refused(blob):
    path, data = blob
    pin = Pin(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    tampered = bytearray(data)
    tampered[12345] ^= 1
    path.write_bytes(bytes(tampered))
    with pytest.raises(WeightsMismatch, match="sha256"):
        check_file(path, pin)


def test_wrong_size_is_refused_before_hashing(blob):
    path, data = blob
    with pytest.raises(WeightsMismatch, match=f"{len(data)} bytes, expected {len(data) + 1}"):
        check_file(path, Pin(sha256="0" * 64, size=len(data) + 1))


def test_empty_pin_checks_nothing_but_reports_the_digest(blob):
    path, data = blob
    assert check_file(path, Pin()).sha256 == hashlib.sha256(data).hexdigest()


def test_missing_file_is_model_not_found(tmp_path):
    with pytest.raises(ModelNotFound):
        check_file(tmp_path / "nope.bin", Pin())
