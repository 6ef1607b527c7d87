"""Large buffers through Python: ATE's Cobblestone-256 against OpenSSL's one-shot AES-256-GCM
(the `cryptography` package) and Google Tink's streaming AEAD (`tink`,
AES256_GCM_HKDF_1MB), all in one process on the same data.

    python benches/python_crypto.py [--mib 64] [--rounds 7]

Needs the `ate` wheel (`maturin develop`), `cryptography` and `tink` from PyPI. Each
contender seals and opens the same random plaintext; every round runs them one after the
other (so drift on a shared machine hits all alike), and the best round of each is
reported, in GB/s (10^9 bytes of plaintext per second), with ATE's ratios to the others.
Results go to stdout; record them in benches/README.md with the command.
"""

from __future__ import annotations

import argparse
import io
import os
import time


def contenders(key32: bytes, aad: bytes):
    from ate import crypto
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    import tink
    from tink import streaming_aead

    streaming_aead.register()
    handle = tink.new_keyset_handle(streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_1MB)
    tink_aead = handle.primitive(streaming_aead.StreamingAead)
    aesgcm = AESGCM(key32)
    nonce = os.urandom(12)

    class Kept(io.BytesIO):
        """A BytesIO whose bytes survive `close()` (Tink's stream closes its destination)."""

        def close(self):
            self.kept = self.getvalue()
            super().close()

    def tink_seal(data: bytes) -> bytes:
        dst = Kept()
        with tink_aead.new_encrypting_stream(dst, aad) as enc:
            enc.write(data)
        return dst.kept

    def tink_open(sealed: bytes) -> bytes:
        with tink_aead.new_decrypting_stream(io.BytesIO(sealed), aad) as dec:
            return dec.read()

    buffers: dict[str, bytearray] = {}

    def buffer(name: str, size: int) -> bytearray:
        """One buffer per direction, made on first use and reused after."""
        if name not in buffers:
            buffers[name] = bytearray(size)
        return buffers[name]

    def ate_seal_into(data: bytes):
        out = buffer("seal", crypto.cobblestone_sealed_len(len(data)))
        n = crypto.cobblestone_seal_into(key32, data, out, aad)
        return memoryview(out)[:n]

    def ate_open_into(sealed: bytes):
        out = buffer("open", crypto.cobblestone_opened_len(len(sealed)))
        n = crypto.cobblestone_open_into(key32, sealed, out, aad)
        return memoryview(out)[:n]

    runs = {
        "ate (bytes)": (
            lambda d: crypto.cobblestone_seal(key32, d, aad),
            lambda s: crypto.cobblestone_open(key32, s, aad),
        ),
        "ate (_into, reused buffer)": (ate_seal_into, ate_open_into),
        "openssl one-shot (cryptography)": (
            lambda d: aesgcm.encrypt(nonce, d, aad),
            lambda s: aesgcm.decrypt(nonce, s, aad),
        ),
        "tink streaming (AES256_GCM_HKDF_1MB)": (tink_seal, tink_open),
    }
    if not hasattr(crypto, "cobblestone_seal_into"):  # an older wheel, for comparisons
        del runs["ate (_into, reused buffer)"]
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    size = args.mib << 20
    data = os.urandom(size)
    key32, aad = os.urandom(32), b"tenant:bench"
    runs = contenders(key32, aad)
    sealed = {name: bytes(seal(data)) for name, (seal, _) in runs.items()}
    for name, (_, open_) in runs.items():
        assert bytes(open_(sealed[name])) == data, name
    best = {name: [float("inf"), float("inf")] for name in runs}
    for _ in range(args.rounds):
        for name, (seal, open_) in runs.items():
            t = time.perf_counter()
            seal(data)
            best[name][0] = min(best[name][0], time.perf_counter() - t)
            t = time.perf_counter()
            open_(sealed[name])
            best[name][1] = min(best[name][1], time.perf_counter() - t)
    rate = {name: (size / s / 1e9, size / o / 1e9) for name, (s, o) in best.items()}
    print(f"{args.mib} MiB, best of {args.rounds} rounds, GB/s of plaintext (cores: {os.cpu_count()})")
    print(f"{'':40} {'seal':>8} {'open':>8}")
    for name, (s, o) in rate.items():
        print(f"{name:40} {s:8.2f} {o:8.2f}")
    ossl = rate["openssl one-shot (cryptography)"]
    tink = rate["tink streaming (AES256_GCM_HKDF_1MB)"]
    for name in ("ate (bytes)", "ate (_into, reused buffer)"):
        if name not in rate:
            continue
        s, o = rate[name]
        print(
            f"{name:40} vs openssl {s / ossl[0]:.2f}x / {o / ossl[1]:.2f}x, "
            f"vs tink {s / tink[0]:.2f}x / {o / tink[1]:.2f}x (seal / open)"
        )


if __name__ == "__main__":
    main()
