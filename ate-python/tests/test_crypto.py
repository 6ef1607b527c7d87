"""ate.crypto: Cobblestone-256 from Python, checked against the Wycheproof vectors."""

import hashlib
import json
import pathlib
import sys
import threading
import zlib

import pytest

import ate
from ate import crypto

VECTORS = (
    pathlib.Path(__file__).resolve().parents[2]
    / "tests/vectors/wycheproof/c2sp_chunked_encryption_aes_256_gcm_test.json"
)


def load_vectors():
    # A missing vector file is a failure, never a skip.
    data = json.loads(VECTORS.read_text())
    assert data["algorithm"] == "Cobblestone-256"
    return [t for g in data["testGroups"] for t in g["tests"]]


def test_all_wycheproof_vectors():
    vectors = load_vectors()
    assert len(vectors) == 35
    for v in vectors:
        key, ctx = bytes.fromhex(v["key"]), bytes.fromhex(v["ctx"])
        ct = zlib.decompress(bytes.fromhex(v["ct"]))
        if v["result"] == "valid":
            msg = crypto.cobblestone_open(key, ct, ctx)
            assert len(msg) == v["msgLength"], v["tcId"]
            assert hashlib.sha512(msg).hexdigest() == v["msgSha512"], v["tcId"]
            # Round trip through our own encryption.
            assert crypto.cobblestone_open(key, crypto.cobblestone_seal(key, msg, ctx), ctx) == msg
        else:
            expected = ate.InvalidInputError if "InvalidKeySize" in v["flags"] else ate.IntegrityError
            with pytest.raises(expected):
                crypto.cobblestone_open(key, ct, ctx)


@pytest.mark.parametrize("size", [0, 1, 16383, 16384, 16385, 3 * 16384, 1 << 20])
def test_round_trip_sizes(size):
    key = bytes(range(32))
    data = bytes((i * 7) % 256 for i in range(size))
    sealed = crypto.cobblestone_seal(key, data, b"tenant:a")
    assert len(sealed) == 56 + size + 16 * (size // 16384 + 1)
    assert crypto.cobblestone_open(key, sealed, b"tenant:a") == data
    assert crypto.cobblestone_open(key, crypto.cobblestone_seal(key, data), b"") == data


def test_bad_input():
    key = bytes(32)
    sealed = crypto.cobblestone_seal(key, b"secret", b"ctx")
    for bad_key in [b"", bytes(16), bytes(31), bytes(33)]:
        with pytest.raises(ate.InvalidInputError, match="32 bytes"):
            crypto.cobblestone_seal(bad_key, b"x")
        with pytest.raises(ValueError):
            crypto.cobblestone_open(bad_key, sealed, b"ctx")
    with pytest.raises(ate.IntegrityError):
        crypto.cobblestone_open(key, sealed, b"other context")
    with pytest.raises(ate.IntegrityError):
        crypto.cobblestone_open(bytes([1] * 32), sealed, b"ctx")
    for i in range(len(sealed)):
        flipped = bytearray(sealed)
        flipped[i] ^= 1
        with pytest.raises(ate.IntegrityError):
            crypto.cobblestone_open(key, bytes(flipped), b"ctx")
    for cut in [0, 10, 56, len(sealed) - 1]:
        with pytest.raises(ate.IntegrityError):
            crypto.cobblestone_open(key, sealed[:cut], b"ctx")
    with pytest.raises(TypeError):
        crypto.cobblestone_seal("not bytes", b"x")  # type: ignore[arg-type]


def test_releases_the_gil():
    """Another thread keeps running Python *during* one long seal: impossible if the call
    held the GIL, since the ticker then could not run until the call returned."""
    key, data = bytes(32), bytes(64 << 20)
    ticks, running, done = [0], threading.Event(), threading.Event()

    def tick():
        running.set()
        while not done.is_set():
            ticks[0] += 1

    # With a long switch interval the interpreter never hands the GIL over between
    # bytecodes, so the ticker can only run while the call has released it.
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(0.5)
    try:
        ticker = threading.Thread(target=tick)
        ticker.start()
        running.wait()
        before = ticks[0]
        sealed = crypto.cobblestone_seal(key, data)
        during = ticks[0] - before
        done.set()
        ticker.join()
    finally:
        sys.setswitchinterval(old_interval)
    assert len(sealed) == 56 + len(data) + 16 * (len(data) // 16384 + 1)
    assert during > 1000, f"the ticker advanced only {during} times during the call"


@pytest.mark.parametrize("size", [0, 1, 16384, 16385, 70 * 16384 + 3])
def test_into_fills_a_callers_buffer(size):
    key, data = bytes(range(32)), bytes((i * 13) % 256 for i in range(size))
    n = crypto.cobblestone_sealed_len(size)
    assert n == 56 + size + 16 * (size // 16384 + 1)
    out = bytearray(b"\xee" * (n + 4))
    assert crypto.cobblestone_seal_into(key, data, out, b"ctx") == n
    assert out[n:] == b"\xee" * 4, "nothing written past the message"
    sealed = bytes(out[:n])
    assert crypto.cobblestone_open(key, sealed, b"ctx") == data
    assert crypto.cobblestone_opened_len(n) == size
    # Every writable, contiguous byte buffer works: bytearray, memoryview, array('B').
    import array

    for plain in (bytearray(size), memoryview(bytearray(size + 2)), array.array("B", bytes(size + 1))):
        assert crypto.cobblestone_open_into(key, sealed, plain, b"ctx") == size
        assert bytes(plain)[:size] == data
    # The same buffer again: reused, not reallocated.
    again = bytearray(size)
    for _ in range(2):
        assert crypto.cobblestone_open_into(key, sealed, again, b"ctx") == size
    assert again == data


def test_into_refuses_bad_buffers_and_leaves_no_plaintext():
    key, data = bytes(32), bytes(range(256)) * 300  # five chunks: the last fails last
    sealed = crypto.cobblestone_seal(key, data)
    n = len(data)
    with pytest.raises(ate.InvalidInputError, match=f"{n} are needed"):
        crypto.cobblestone_open_into(key, sealed, bytearray(n - 1))
    with pytest.raises(ate.InvalidInputError, match="are needed"):
        crypto.cobblestone_seal_into(key, data, bytearray(10))
    for readonly in (bytes(n), memoryview(bytes(n))):
        with pytest.raises(ate.InvalidInputError, match="read-only"):
            crypto.cobblestone_open_into(key, sealed, readonly)
    with pytest.raises(ate.InvalidInputError, match="writable bytes-like"):
        crypto.cobblestone_open_into(key, sealed, "not a buffer")  # type: ignore[arg-type]
    with pytest.raises(ate.InvalidInputError, match="not contiguous"):
        crypto.cobblestone_open_into(key, sealed, memoryview(bytearray(2 * n))[::2])
    # A damaged last chunk: the chunks before it were opened into `out`, then zeroed.
    damaged = bytearray(sealed)
    damaged[-1] ^= 1
    out = bytearray(b"\xaa" * (n + 3))
    with pytest.raises(ate.IntegrityError):
        crypto.cobblestone_open_into(key, bytes(damaged), out)
    assert out[:n] == bytes(n), "no unauthenticated plaintext left behind"
    assert out[n:] == b"\xaa" * 3
    for bad in (-1, 2**64):
        with pytest.raises((OverflowError, ate.InvalidInputError)):
            crypto.cobblestone_sealed_len(bad)
    with pytest.raises(ate.IntegrityError):
        crypto.cobblestone_opened_len(10)
    # A bytearray being written cannot be resized (it is exported during the call).
    grow = bytearray(n)
    crypto.cobblestone_open_into(key, sealed, grow)
    grow.extend(b"x")  # and can be again afterwards
    assert len(grow) == n + 1
