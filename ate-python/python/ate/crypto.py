"""Cobblestone-256 (c2sp.org/chunked-encryption, HKDF-SHA-512 + AES-256-GCM) for Python.

>>> from ate import crypto
>>> key = bytes(32)
>>> sealed = crypto.cobblestone_seal(key, b"hello", b"tenant:acme")
>>> crypto.cobblestone_open(key, sealed, b"tenant:acme")
b'hello'

Wrong key, wrong context or any modified byte raises ``ate.IntegrityError``; a key that is
not 32 bytes raises ``ate.InvalidInputError``. The GIL is released while the cipher runs.
"""

from ate._ate import cobblestone_open, cobblestone_seal

__all__ = ["cobblestone_seal", "cobblestone_open"]
