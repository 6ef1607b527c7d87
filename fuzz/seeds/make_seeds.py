#!/usr/bin/env python3
"""Writes the hand-made seed inputs into fuzz/corpus/<target>/ (standard library only).

Seeds are small valid (and nearly valid) inputs of each format, so the fuzzer starts from
the interesting parts of the input space; libFuzzer adds what it finds to the same folders.
Run from anywhere: python3 fuzz/seeds/make_seeds.py
"""
import base64
import hashlib
import io
import json
import os
import tarfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(os.path.dirname(HERE), "corpus")


def write(target, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    name = "seed-" + hashlib.sha1(data).hexdigest()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jws():
    claims = {"iss": "https://ate.fuzz", "aud": "ate", "sub": "user:1", "tenant": "acme",
              "roles": ["member"], "exp": 1_700_000_600, "iat": 1_700_000_000,
              "nbf": 1_700_000_000, "jti": "j1", "sid": "s1"}
    header = {"alg": "EdDSA", "kid": "k1", "typ": "at+jwt"}
    write("jws", b"\x01" + json.dumps(header).encode() + b"\n" + json.dumps(claims).encode())
    write("jws", b"\x02" + json.dumps(claims).encode())
    write("jws", b"\x02" + json.dumps({**claims, "aud": ["ate", "other"]}).encode())
    write("jws", b"\x01" + json.dumps({"alg": "none", "kid": "k1"}).encode() + b"\n{}")
    write("jws", b"\x01" + json.dumps({**header, "crit": ["exp"]}).encode() + b"\n{}")
    write("jws", b"\x00" + f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}.{b64(bytes(64))}".encode())
    write("jws", b"\x00a.b.c")
    write("jws", b"\x00..")


def jwks():
    # Public keys only, written out by hand (the values are valid points/moduli from RFC 7517
    # and RFC 8037 examples).
    ed = {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "alg": "EdDSA",
          "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    ec = {"kty": "EC", "crv": "P-256", "kid": "ec", "alg": "ES256",
          "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
          "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}
    rsa = {"kty": "RSA", "kid": "rsa", "alg": "RS256", "e": "AQAB",
           "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}
    write("jwks", json.dumps({"keys": [ed, ec, rsa]}))
    write("jwks", json.dumps(ed))
    write("jwks", json.dumps(ec))
    write("jwks", json.dumps(rsa))
    write("jwks", json.dumps({"keys": [{**ed, "d": "AAAA"}]}))
    write("jwks", json.dumps({"keys": [{"kty": "oct", "kid": "h", "k": "AAAA"}, ec]}))
    write("jwks", json.dumps({"keys": [ed, ed]}))
    write("jwks", json.dumps({"keys": [{**rsa, "e": "Aw"}]}))


def password_hash():
    salt = "c29tZXNhbHRzb21lc2FsdA"
    out = "A" * 43
    for s in [
        f"$argon2id$v=19$m=19456,t=2,p=1${salt}${out}",
        f"$argon2id$v=19$m=64,t=1,p=1${salt}${out}",
        f"$argon2i$v=19$m=65536,t=3,p=4${salt}${out}",
        f"$argon2d$v=16$m=256,t=2,p=1${salt}${out}",
        f"$argon2id$m=64,t=1,p=1${salt}${out}",
        f"$argon2id$v=19$m=64,t=1,p=1,keyid=AAAA,data=AAAA${salt}${out}",
        f"$argon2id$v=19$m=999999999,t=2,p=1${salt}${out}",
        "$2b$04$" + "K" * 53,
        "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
        "$2a$12$R9h/cIPz0gi.URNNX3kh2OPST9/PBKf7IVGqmAzm4p1jK1p3N5Q9e",
        "$2y$17$" + "a" * 53,
    ]:
        write("password_hash", s)


def workflow_dag():
    dags = [
        {"nodes": [{"id": "build", "step": "build"}]},
        {"nodes": [
            {"id": "build", "step": "build", "retry": {"max_attempts": 5}},
            {"id": "test", "step": "test", "depends_on": ["build"], "timeout_ms": 1000},
            {"id": "approve", "signal": "approval", "depends_on": ["test"]},
            {"id": "deploy", "step": "deploy", "depends_on": ["approve", "test"],
             "when": {"node": "test", "pointer": "/ok", "op": "equals", "value": True},
             "continue_on_failure": True, "params": {"env": "prod"}}]},
        {"nodes": [{"id": "a", "step": "build", "depends_on": ["b"]},
                   {"id": "b", "step": "test", "depends_on": ["a"]}]},
        {"nodes": [{"id": "a", "step": "build", "depends_on": ["a"]}]},
        {"nodes": [{"id": "a", "step": "nope"}]},
    ]
    for dag in dags:
        write("workflow_dag", b"\x00" + json.dumps(dag).encode())
    write("workflow_dag", b"\x81" + json.dumps(dags[1]).encode() + b"\n" +
          json.dumps({"repo": "acme/web"}).encode())
    write("workflow_dag", b"\x00{")


def cron():
    for s in ["0 * * * *\nUTC\n1700000000", "@daily\nEurope/Berlin\n0",
              "*/5 9-17 * * 1-5\nAmerica/New_York\n1700000000", "0 0 29 2 *\nUTC\n1",
              "30 2 * 3 SUN\nEurope/Berlin\n1711846800", "0 0 30 2 *\nUTC",
              "@hourly\nAustralia/Lord_Howe\n1700000000", "59 23 31 12 *\nPacific/Kiritimati\n7258118399"]:
        write("cron", s)


def gateway_target():
    for s in [
        "/svc/orders/api/v1/items?id=1\nhost: ate.example\nauthorization: Bearer x\n"
        "connection: keep-alive, x-debug\nx-debug: 1\nx-forwarded-for: 6.6.6.6",
        "/svc/orders\nx-ate-identity: forged",
        "/svc/orders/a/%2e%2E/b",
        "/svc/orders/a/../b",
        "/svc/orders//x",
        "/svc/Orders/x\ntransfer-encoding: chunked\nte: trailers",
        "/api/other",
        "http://evil.example/svc/orders/x",
    ]:
        write("gateway_target", s)


def tar_bytes(entries, fmt=tarfile.GNU_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 0
            if kind == "file":
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = data
                t.addfile(info)
            elif kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = data
                t.addfile(info)
    return buf.getvalue()


def archive_import():
    plain = [("src/", "dir", None), ("src/main.rs", "file", b"fn main() {}\n"),
             ("README.md", "file", b"# hello\n" * 20), ("link", "symlink", "src/main.rs"),
             ("hard", "hardlink", "README.md")]
    hostile = [("../escape", "file", b"x"), ("/abs", "file", b"y"), ("a/../../b", "file", b"z"),
               ("up", "symlink", "../../etc/passwd"), ("x" * 300, "file", b"long")]
    for entries in (plain, hostile):
        for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT):
            try:
                raw = tar_bytes(entries, fmt)
            except ValueError:
                continue
            write("archive_import", b"\x00" + raw)
            write("archive_import", b"\x01" + raw)
            write("archive_import", b"\x02" + raw)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("src/lib.rs", "pub fn f() {}\n")
        z.writestr("docs/a.md", "a" * 200)
        z.writestr("../evil", "x")
    write("archive_import", b"\x03" + buf.getvalue())
    write("archive_import", b"\x00" + buf.getvalue())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("a.txt", "hello")
    write("archive_import", b"\x03" + buf.getvalue())


if __name__ == "__main__":
    for make in (jws, jwks, password_hash, workflow_dag, cron, gateway_target, archive_import):
        make()
    # cobblestone takes structured input (the `arbitrary` crate reads any bytes): a few
    # byte patterns to start from.
    for seed in (bytes(range(256)), b"\x01" * 200, b"\x00\xff" * 100):
        write("cobblestone", seed)
    print("seeds written to", CORPUS)
