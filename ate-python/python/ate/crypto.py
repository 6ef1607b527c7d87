"""Cobblestone-256 (c2sp.org/chunked-encryption, HKDF-SHA-512 + AES-256-GCM) for Python.

>>> from ate import crypto
>>> key = bytes(32)
>>> sealed = crypto.cobblestone_seal(key, b"hello", b"tenant:acme")
>>> crypto.cobblestone_open(key, sealed, b"tenant:acme")
b'hello'

Wrong key, wrong context or any modified byte raises ``ate.IntegrityError``; a key that is
not 32 bytes raises ``ate.InvalidInputError``. The GIL is released while the cipher runs.

Large messages: the result is written once, straight into the ``bytes`` returned. To reuse
a buffer instead, size it with ``cobblestone_sealed_len`` / ``cobblestone_opened_len`` and
pass it to ``cobblestone_seal_into`` / ``cobblestone_open_into`` (any writable, contiguous
bytes-like object: ``bytearray``, ``memoryview``, a NumPy ``uint8`` array); they return how
many bytes they wrote. Other threads must not use that buffer during the call. If a message
fails to authenticate, ``cobblestone_open_into`` zeroes what it wrote before raising.

>>> out = bytearray(crypto.cobblestone_opened_len(len(sealed)))
>>> crypto.cobblestone_open_into(key, sealed, out, b"tenant:acme")
5
>>> bytes(out)
b'hello'
"""

from ate._ate import (
    cobblestone_open,
    cobblestone_open_into,
    cobblestone_opened_len,
    cobblestone_seal,
    cobblestone_seal_into,
    cobblestone_sealed_len,
)

__all__ = [
    "cobblestone_seal",
    "cobblestone_open",
    "cobblestone_seal_into",
    "cobblestone_open_into",
    "cobblestone_sealed_len",
    "cobblestone_opened_len",
]
