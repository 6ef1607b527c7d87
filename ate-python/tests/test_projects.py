"""a.projects and a.analysis: codebases imported, listed, read, diffed, exported, backed up
and restored from Python, with analysis results and payloads; blocking and asyncio.

Runs on SQLite file + fs, in-memory SQLite + memory and PostgreSQL + S3 (the loopback test
server); the Rust conformance suite runs every combination.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import io
import os
import pathlib
import tarfile

import pytest

import ate
from conftest import MASTER_KEY



def noise(n: int) -> bytes:
    """Deterministic bytes that do not compress."""
    out, block = bytearray(), b"seed"
    while len(out) < n:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:n])


TREE = {
    "src/main.py": b"# entry point\nimport sys\n\nprint(sys.argv)\n",
    "src/util.py": b"def f():\n    return 1\n",
    "README.md": b"# Demo\n\nA small codebase.\n",
    "data/blob.bin": noise(1 << 20),  # several chunks
    "vendor/lib.js": b"var x = 1;\n",
}


def write_tree(root: pathlib.Path, files: dict[str, bytes]) -> pathlib.Path:
    for path, content in files.items():
        full = root / path
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_bytes(content)
    return root


def tar_gz(files: dict[str, bytes], extra=()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, content in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(content)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(content))
        for info, content in extra:
            tar.addfile(info, io.BytesIO(content) if content is not None else None)
    return buf.getvalue()


@pytest.fixture
def acme(store):
    return store.tenants.create("acme", "Acme").id


@pytest.fixture
def project(store, acme):
    return store.projects.create(acme, "demo", description="A demo", labels={"team": "core"}).id


def test_projects_are_created_listed_updated_and_deleted(store, acme):
    p = store.projects.create(acme, "billing-api", description="Bills", labels={"team": "pay"},
                              settings={"analyzers": ["semgrep"]})
    assert (p.name, p.description, p.labels, p.settings, p.revision) == (
        "billing-api", "Bills", {"team": "pay"}, {"analyzers": ["semgrep"]}, 1)
    assert store.projects.get(acme, p.id) == p
    assert store.projects.get_by_name(acme, "BILLING-API").id == p.id
    for n in range(3):
        store.projects.create(acme, f"svc-{n}", labels={"team": "ops"})
    first = store.projects.list(acme, name_prefix="svc-", limit=2)
    rest = store.projects.list(acme, name_prefix="svc-", cursor=first.next_cursor)
    assert [x.name for x in first] + [x.name for x in rest] == ["svc-0", "svc-1", "svc-2"]
    assert [x.name for x in store.projects.list(acme, labels={"team": "pay"})] == ["billing-api"]
    with pytest.raises(ate.AlreadyExistsError):
        store.projects.create(acme, "Billing-API")
    p2 = store.projects.update(acme, p.id, description="Invoices", expected_revision=1)
    assert (p2.description, p2.revision) == ("Invoices", 2)
    with pytest.raises(ate.ConflictError):
        store.projects.update(acme, p.id, description="stale", expected_revision=1)
    store.projects.delete(acme, p.id)
    with pytest.raises(ate.NotFoundError):
        store.projects.get(acme, p.id)


@pytest.mark.parametrize(
    "call",
    [
        lambda a, t: a.projects.create(t, "../etc"),
        lambda a, t: a.projects.create(t, "x", labels={"k": 1}),
        lambda a, t: a.projects.create(t, "x", settings={1, 2}),
        lambda a, t: a.projects.create(t, "x", settings=[1, 2]),
        lambda a, t: a.projects.list(t, limit=0),
        lambda a, t: a.projects.get(t, "not-a-uuid"),
        lambda a, t: a.projects.import_archive(t, a.projects.create(t, "y").id, io.BytesIO(b""), format="rar"),
        lambda a, t: a.projects.import_archive(t, a.projects.create(t, "z").id, 42),
        lambda a, t: a.projects.import_dir(t, a.projects.create(t, "w").id, "/nonexistent/dir", progress=5),
        lambda a, t: a.projects.backup(t, a.projects.create(t, "v").id, b"short", io.BytesIO()),
    ],
)
def test_bad_input_is_a_typed_error(store, acme, call):
    with pytest.raises(ate.InvalidInputError):
        call(store, acme)


def test_directories_import_with_progress_and_read_back(store, acme, project, tmp_path):
    src = write_tree(tmp_path / "src", TREE)
    os.symlink("../../outside", src / "src" / "link")
    seen = []
    snap = store.projects.import_dir(acme, project, src, label="v1", progress=seen.append)
    assert (snap.label, snap.source, snap.files) == ("v1", "directory", len(TREE) + 1)
    assert snap.logical_bytes == sum(map(len, TREE.values())) + len("../../outside")
    assert [p.files for p in seen] == list(range(1, snap.files + 1))
    assert seen[-1].bytes == snap.logical_bytes
    assert sorted(p.path for p in seen) == sorted([*TREE, "src/link"])
    assert {l.language for l in snap.languages} >= {"Python", "Markdown"}
    assert snap.vendored_files == 1 and snap.symlinks == 1 and snap.binary_files == 1

    entries = {f.path: f for f in store.projects.files(acme, snap.id)}
    assert set(entries) == {*TREE, "src/link"}
    main = entries["src/main.py"]
    assert (main.kind, main.language, main.size) == ("file", "Python", len(TREE["src/main.py"]))
    assert main.sha256 == hashlib.sha256(TREE["src/main.py"]).hexdigest()
    assert main.md5 == hashlib.md5(TREE["src/main.py"]).hexdigest()
    assert (main.code_lines, main.comment_lines, main.blank_lines) == (2, 1, 1)
    link = entries["src/link"]
    assert (link.kind, link.link_target) == ("symlink", "../../outside")
    assert [f.path for f in store.projects.files(acme, snap.id, glob="src/**/*.py")] == ["src/main.py", "src/util.py"]
    assert [f.path for f in store.projects.files(acme, snap.id, vendored=True)] == ["vendor/lib.js"]
    page = store.projects.files(acme, snap.id, limit=2)
    assert len(page) == 2 and page.next_cursor
    with pytest.raises(ate.InvalidInputError):
        store.projects.files(acme, snap.id, glob="[")

    big = TREE["data/blob.bin"]
    assert store.projects.read_file(acme, snap.id, "data/blob.bin") == big
    assert store.projects.read_file(acme, snap.id, "data/blob.bin", start=1000, end=1010) == big[1000:1010]
    assert store.projects.read_file(acme, snap.id, "data/blob.bin", start=len(big) - 3) == big[-3:]
    with pytest.raises(ate.InvalidInputError):
        store.projects.read_file(acme, snap.id, "data/blob.bin", start=-1)
    with pytest.raises(ate.InvalidInputError):
        store.projects.read_file(acme, snap.id, "data/blob.bin", start=10, end=5)
    with pytest.raises(ate.NotFoundError):
        store.projects.read_file(acme, snap.id, "nope.txt")

    with store.projects.open_file(acme, snap.id, "data/blob.bin") as f:
        assert f.seekable() and f.readable() and not f.writable()
        assert f.read(7) == big[:7]
        f.seek(700_000)
        assert f.read(70_000) == big[700_000:770_000]
        f.seek(-5, os.SEEK_END)
        assert f.read() == big[-5:]
        assert f.read() == b""
        f.seek(0)
        assert f.read() == big
    with pytest.raises(ate.NotFoundError):
        store.projects.open_file(acme, snap.id, "missing")

    class Counting:
        """Counts the store reads a file object makes."""

        def __init__(self, projects):
            self.projects, self.calls = projects, 0

        def read_file(self, *args, **kwargs):
            self.calls += 1
            return self.projects.read_file(*args, **kwargs)

    counting = Counting(store.projects)
    raw = ate.projects.SnapshotFile(counting, acme, snap.id, "data/blob.bin", len(big))
    raw.READ_PIECE = 300_000
    assert raw.readall() == big and counting.calls == 4  # not one per 8 KiB
    raw.seek(10)
    buf = bytearray(1_000_000)
    assert raw.readinto(buf) == 300_000 and bytes(buf[:300_000]) == big[10:300_010]
    with io.BufferedReader(ate.projects.SnapshotFile(counting, acme, snap.id, "data/blob.bin", len(big))) as f:
        before = counting.calls
        assert f.read() == big and counting.calls - before <= 2

    stats = store.projects.stats(acme, project)
    assert (stats.snapshots, stats.logical_bytes, stats.latest.id) == (1, snap.logical_bytes, snap.id)
    assert stats.stored_bytes > 0
    usage = store.projects.usage(acme)
    assert (usage.projects, usage.snapshots, usage.project_stored_bytes) == (1, 1, stats.stored_bytes)
    assert usage.users is None  # this client runs no auth


def test_reimports_dedup_and_diff(store, acme, project, tmp_path):
    v1 = store.projects.import_dir(acme, project, write_tree(tmp_path / "v1", TREE))
    changed = {**TREE, "src/util.py": b"def f():\n    return 2\n", "NEW.md": b"new\n"}
    del changed["README.md"]
    v2 = store.projects.import_dir(acme, project, write_tree(tmp_path / "v2", changed))
    assert v2.new_bytes < v1.new_bytes / 10  # the 1 MiB blob is not stored twice
    d = store.projects.diff(acme, v1.id, v2.id)
    assert (d.added, d.removed, d.changed) == (["NEW.md"], ["README.md"], ["src/util.py"])
    assert [s.id for s in store.projects.snapshots(acme, project)] == [v2.id, v1.id]
    store.projects.delete_snapshot(acme, v1.id)
    with pytest.raises(ate.NotFoundError):
        store.projects.snapshot(acme, v1.id)
    assert store.projects.snapshot(acme, v2.id).id == v2.id


def test_archives_import_from_paths_and_file_objects_and_export_back(store, acme, project, tmp_path):
    archive = tar_gz(TREE)
    path = tmp_path / "code.tar.gz"
    path.write_bytes(archive)
    from_path = store.projects.import_archive(acme, project, path, label="from a path")
    from_file = store.projects.import_archive(acme, project, io.BytesIO(archive), format="tar.gz")
    assert from_path.source == from_file.source == "tar.gz"
    assert from_path.files == from_file.files == len(TREE)
    assert from_file.new_bytes < 1000  # everything was already there

    out = io.BytesIO()
    written = store.projects.export_tar(acme, from_file.id, out)
    assert written == len(out.getvalue())
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        got = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    assert got == TREE
    target = tmp_path / "export.tar"
    assert store.projects.export_tar(acme, from_file.id, target) == written
    assert target.read_bytes() == out.getvalue()


def test_refused_and_interrupted_imports_leave_nothing(store, acme, project, tmp_path):
    evil = tarfile.TarInfo("../evil.sh")
    evil.size = 2
    with pytest.raises(ate.InvalidInputError) as refused:
        store.projects.import_archive(acme, project, io.BytesIO(tar_gz(TREE, [(evil, b"x\n")])))
    assert "evil" in str(refused.value)

    class Stop(Exception):
        pass

    def stop_at_two(p):
        if p.files == 2:
            raise Stop(p.path)

    with pytest.raises(Stop):
        store.projects.import_dir(acme, project, write_tree(tmp_path / "t", TREE), progress=stop_at_two)

    class Broken(io.RawIOBase):
        def __init__(self, data):
            self.data, self.sent = data, 0

        def readable(self):
            return True

        def read(self, n=-1):
            if self.sent > 50_000:
                raise OSError("disk on fire")
            piece = self.data[self.sent:self.sent + 10_000]
            self.sent += len(piece)
            return piece

    with pytest.raises(OSError, match="disk on fire"):
        store.projects.import_archive(acme, project, Broken(tar_gz(TREE)), format="tar.gz")

    class Text:
        def read(self, n=-1):
            return "not bytes"

    with pytest.raises(ate.InvalidInputError, match="binary mode"):
        store.projects.import_archive(acme, project, Text(), format="tar")
    with pytest.raises(ate.InvalidInputError, match="(?i)truncat|corrupt|unexpected end|eof"):
        store.projects.import_archive(acme, project, io.BytesIO(tar_gz(TREE)[:500]), format="tar.gz")

    assert len(store.projects.snapshots(acme, project)) == 0
    usage = store.projects.usage(acme)
    assert (usage.snapshots, usage.project_stored_bytes) == (0, 0)


def test_analysis_results_and_payloads(store, acme, project, tmp_path):
    snap = store.projects.import_dir(acme, project, write_tree(tmp_path / "s", TREE))
    r = store.analysis.create(acme, project, "sast", "semgrep", "1.90.0", snapshot_id=snap.id,
                              summary={"rules": 120})
    assert (r.status, r.snapshot_id, r.summary, r.revision) == ("pending", snap.id, {"rules": 120}, 1)
    other = store.analysis.create(acme, project, "sbom.cyclonedx", "syft", "1.0", status="succeeded")
    assert other.finished_at is not None

    report = os.urandom(300_000)
    p1 = store.analysis.put_payload(acme, r.id, "report.sarif", report, content_type="application/sarif+json")
    assert (p1.size, p1.sha256) == (len(report), hashlib.sha256(report).hexdigest())
    store.analysis.put_payload(acme, r.id, "log.txt", io.BytesIO(b"line\n" * 1000))
    (tmp_path / "extra.bin").write_bytes(b"\x00" * 5000)
    store.analysis.put_payload(acme, r.id, "extra.bin", tmp_path / "extra.bin")
    with pytest.raises(ate.InvalidInputError):
        store.analysis.put_payload(acme, r.id, "text", "a str is ambiguous")
    with pytest.raises(ate.AlreadyExistsError):
        store.analysis.put_payload(acme, r.id, "log.txt", b"again")

    class Failing(io.RawIOBase):
        """Gives 20 kB, then raises: the payload must not be recorded as a short one."""

        def __init__(self):
            self.calls = 0

        def readable(self):
            return True

        def read(self, n=-1):
            self.calls += 1
            if self.calls > 1:
                raise OSError("network gone")
            return b"z" * 20_000

    with pytest.raises(OSError, match="network gone"):
        store.analysis.put_payload(acme, r.id, "partial.bin", Failing())
    assert [p.name for p in store.analysis.get(acme, r.id).payloads] == ["extra.bin", "log.txt", "report.sarif"]

    running = store.analysis.update(acme, r.id, status="running")
    done = store.analysis.update(acme, r.id, status="succeeded", summary={"findings": 3},
                                 expected_revision=running.revision)
    assert (done.status, done.summary, len(done.payloads)) == ("succeeded", {"findings": 3}, 3)
    with pytest.raises(ate.ConflictError):
        store.analysis.update(acme, r.id, status="running")
    with pytest.raises(ate.InvalidInputError):
        store.analysis.update(acme, other.id, status="sleeping")
    with pytest.raises(ate.ConflictError):
        store.analysis.put_payload(acme, r.id, "late", b"x")

    assert store.analysis.read_payload(acme, r.id, "report.sarif") == report
    out = io.BytesIO()
    assert store.analysis.download_payload(acme, r.id, "log.txt", out).size == 5000
    assert out.getvalue() == b"line\n" * 1000
    store.analysis.download_payload(acme, r.id, "extra.bin", tmp_path / "copy.bin")
    assert (tmp_path / "copy.bin").read_bytes() == b"\x00" * 5000
    with pytest.raises(ate.NotFoundError):
        store.analysis.read_payload(acme, r.id, "missing")

    assert [x.id for x in store.analysis.list(acme, project, kind="sast")] == [r.id]
    assert [x.id for x in store.analysis.list(acme, project, snapshot_id=snap.id)] == [r.id]
    assert [x.id for x in store.analysis.list(acme, project, status="succeeded")] == [other.id, r.id]
    store.analysis.delete(acme, other.id)
    with pytest.raises(ate.NotFoundError):
        store.analysis.get(acme, other.id)
    assert store.projects.usage(acme).analysis_results == 1


def test_backups_restore_into_another_database_byte_for_byte(store, acme, project, tmp_path):
    snap = store.projects.import_dir(acme, project, write_tree(tmp_path / "s", TREE))
    r = store.analysis.create(acme, project, "lint", "ruff", "0.8", snapshot_id=snap.id)
    store.analysis.put_payload(acme, r.id, "out.json", b'{"ok": true}')
    key = os.urandom(32)
    backup = io.BytesIO()
    summary = store.projects.backup(acme, project, key, backup)
    assert (summary.snapshots, summary.files, summary.analysis_results, summary.payloads) == (1, len(TREE), 1, 1)
    assert summary.bytes == len(backup.getvalue())
    (tmp_path / "demo.atebackup").write_bytes(backup.getvalue())

    other_key = bytes(reversed(MASTER_KEY))
    with ate.Ate(f"sqlite://{tmp_path}/elsewhere.db", storage_url=f"fs://{tmp_path}/elsewhere",
                 master_key=other_key) as b:
        globex = b.tenants.create("globex", "Globex").id
        with pytest.raises(ate.IntegrityError):
            b.projects.restore(globex, os.urandom(32), io.BytesIO(backup.getvalue()))
        damaged = bytearray(backup.getvalue())
        damaged[len(damaged) // 2] ^= 1
        with pytest.raises(ate.IntegrityError):
            b.projects.restore(globex, key, io.BytesIO(bytes(damaged)))
        assert len(b.projects.list(globex)) == 0

        report = b.projects.restore(globex, key, tmp_path / "demo.atebackup", name="demo-restored")
        assert (report.snapshots, report.files, report.analysis_results, report.payloads) == (1, len(TREE), 1, 1)
        restored = b.projects.get(globex, report.project_id)
        assert (restored.name, restored.labels) == ("demo-restored", {"team": "core"})
        new_snap = b.projects.snapshots(globex, restored.id).items[0]
        theirs = {f.path: f.sha256 for f in b.projects.files(globex, new_snap.id)}
        ours = {f.path: f.sha256 for f in store.projects.files(acme, snap.id)}
        assert theirs == ours
        results = b.analysis.list(globex, restored.id)
        assert b.analysis.read_payload(globex, results.items[0].id, "out.json") == b'{"ok": true}'


def test_whole_tenants_back_up_and_restore_elsewhere(store, acme, project, tmp_path):
    snap = store.projects.import_dir(acme, project, write_tree(tmp_path / "s", TREE))
    store.projects.create(acme, "empty-project")
    store.storage.put(acme, "reports/q3.csv", b"region,total\n", content_type="text/csv",
                      metadata={"owner": "ana"})
    key = os.urandom(32)
    summary = store.projects.backup_tenant(acme, key, tmp_path / "acme.atebackup")
    assert (summary.projects, summary.snapshots, summary.files, summary.objects) == (2, 1, len(TREE), 1)
    with ate.Ate(f"sqlite://{tmp_path}/other.db", storage_url="memory://", master_key=os.urandom(32)) as b:
        globex = b.tenants.create("globex", "Globex").id
        b.storage.put(globex, "reports/q3.csv", b"theirs")
        with pytest.raises(ate.AlreadyExistsError):
            b.projects.restore_tenant(globex, key, tmp_path / "acme.atebackup")
        assert len(b.projects.list(globex)) == 0
        assert b.storage.get(globex, "reports/q3.csv") == b"theirs"
        b.storage.delete(globex, "reports/q3.csv")
        with pytest.raises(ate.InvalidInputError, match="project backup"):
            one = io.BytesIO()
            store.projects.backup(acme, project, key, one)
            b.projects.restore_tenant(globex, key, io.BytesIO(one.getvalue()))
        report = b.projects.restore_tenant(globex, key, tmp_path / "acme.atebackup")
        assert (len(report.project_ids), report.files, report.objects) == (2, len(TREE), 1)
        assert sorted(p.name for p in b.projects.list(globex)) == ["demo", "empty-project"]
        demo = b.projects.get_by_name(globex, "demo")
        new_snap = b.projects.snapshots(globex, demo.id).items[0]
        assert {f.path: f.sha256 for f in b.projects.files(globex, new_snap.id)} == {
            f.path: f.sha256 for f in store.projects.files(acme, snap.id)}
        info = b.storage.stat(globex, "reports/q3.csv")
        assert (info.content_type, info.metadata) == ("text/csv", {"owner": "ana"})
        assert b.storage.get(globex, "reports/q3.csv") == b"region,total\n"


def test_principals_act_only_within_their_permissions_and_tenant(store, acme, project, tmp_path):
    a = ate.Ate(f"sqlite://{tmp_path}/auth.db", storage_url=f"fs://{tmp_path}/b", master_key=MASTER_KEY,
                auth_issuer="https://auth.example", auth_audience="t", insecure_fast_password_hashing=True)
    with a:
        acme2 = a.tenants.create("acme", "Acme").id
        globex = a.tenants.create("globex", "Globex").id
        theirs = a.projects.create(globex, "secret")
        a.auth.create_user(acme2, "r@acme.example", password="a long passphrase", permissions=["projects:read"])
        reader = a.acting_as(a.auth.verify(a.auth.login(acme2, "r@acme.example", "a long passphrase").access_token))
        mine = a.projects.create(acme2, "mine")
        assert reader.projects.get(acme2, mine.id).name == "mine"
        with pytest.raises(ate.PermissionDeniedError):
            reader.projects.create(acme2, "more")
        with pytest.raises(ate.PermissionDeniedError):
            reader.projects.import_dir(acme2, mine.id, write_tree(tmp_path / "x", {"a.txt": b"a"}))
        with pytest.raises(ate.PermissionDeniedError):
            reader.projects.get(globex, theirs.id)
        with pytest.raises(ate.NotFoundError):
            a.projects.get(acme2, theirs.id)  # another tenant's project is not in this one
        with pytest.raises(ate.PermissionDeniedError):
            reader.analysis.create(acme2, mine.id, "lint", "ruff", "1")
        with pytest.raises(ate.PermissionDeniedError):
            reader.projects.verify(acme2, repair=True)  # a platform administrator's task
        # Users count in the usage when the client runs auth and the principal may read them.
        assert a.projects.usage(acme2).users == 1
        assert reader.projects.usage(acme2).users is None


def test_verify_checks_projects_and_repairs_orphan_packs(tmp_path):
    root = tmp_path / "b"
    with ate.Ate(f"sqlite://{tmp_path}/v.db", storage_url=f"fs://{root}", master_key=MASTER_KEY) as a:
        t = a.tenants.create("acme", "Acme").id
        p = a.projects.create(t, "demo").id
        other = a.projects.create(t, "other").id
        a.projects.import_dir(t, p, write_tree(tmp_path / "src", {"a.bin": noise(300_000), "b.txt": b"b\n"}))
        report = a.projects.verify(t, read_all=True)
        assert isinstance(report, ate.VerifyReport) and report.clean
        assert (report.projects, report.snapshots, report.files, report.packs, report.objects) == (2, 1, 2, 1, 0)
        assert report.chunks >= 2 and report.bytes_read > 300_000

        packs = root / "t" / t / "p" / p / "k"
        (pack,) = packs.iterdir()
        data = bytearray(pack.read_bytes())
        data[100] ^= 1
        pack.write_bytes(bytes(data))
        orphan = packs / "018f0000-0000-7000-8000-000000000001"  # a UUIDv7 of 2024
        orphan.write_bytes(b"half a pack")

        quick = a.projects.verify(t, p)  # sizes and rows only: the flipped byte is not read
        assert [(x.kind, x.blob) for x in quick.problems] == [("orphan_blob", f"t/{t}/p/{p}/k/{orphan.name}")]
        assert quick.problems[0].project_id == p and quick.projects == 1
        full = asyncio.run(_verify_projects_async(f"sqlite://{tmp_path}/v.db", f"fs://{root}", t))
        kinds = sorted((x.kind, x.path, x.blob) for x in full.problems)
        assert kinds == [
            ("checksum_mismatch", None, f"t/{t}/p/{p}/k/{pack.name}"),
            ("corrupt", "a.bin", None),
            ("orphan_blob", None, f"t/{t}/p/{p}/k/{orphan.name}"),
        ], full.problems
        corrupt = next(x for x in full.problems if x.kind == "corrupt")
        assert corrupt.snapshot_id is not None and corrupt.project_id == p
        assert orphan.exists(), "verify without repair changes nothing"

        repaired = a.projects.verify(t, repair=True)
        assert [(x.kind, x.repaired) for x in repaired.problems] == [("orphan_blob", True)]
        assert not orphan.exists() and pack.exists()
        with pytest.raises(ate.NotFoundError):
            a.projects.verify(t, a.tenants.create("globex", "Globex").id)
        with pytest.raises(ate.InvalidInputError, match="grace"):
            a.projects.verify(t, other, grace=datetime.timedelta(seconds=-1))


async def _verify_projects_async(database_url, storage_url, tenant_id):
    a = await ate.AsyncAte.open(database_url, storage_url=storage_url, master_key=MASTER_KEY)
    try:
        return await a.projects.verify(tenant_id, read_all=True)
    finally:
        await a.close()


def test_projects_need_storage(tmp_path):
    with ate.Ate(f"sqlite://{tmp_path}/plain.db") as a:
        with pytest.raises(ate.InvalidInputError, match="storage"):
            a.projects
        with pytest.raises(ate.InvalidInputError, match="storage"):
            a.analysis


def test_the_asyncio_client_does_the_same(storage_urls, tmp_path):
    database_url, storage_url = storage_urls

    async def main():
        a = await ate.AsyncAte.open(database_url, storage_url=storage_url, master_key=MASTER_KEY)
        try:
            t = (await a.tenants.create("acme", "Acme")).id
            p = (await a.projects.create(t, "demo")).id
            seen = []
            snap = await a.projects.import_archive(t, p, io.BytesIO(tar_gz(TREE)), progress=seen.append)
            assert snap.files == len(TREE) == len(seen)
            files = await a.projects.files(t, snap.id, language="Python")
            assert [f.path for f in files] == ["src/main.py", "src/util.py"]
            async with await a.projects.open_file(t, snap.id, "data/blob.bin") as f:
                f.seek(4096)
                assert await f.read(10) == TREE["data/blob.bin"][4096:4106]
                f.seek(0)
                assert await f.read() == TREE["data/blob.bin"]
            assert await a.projects.read_file(t, snap.id, "README.md") == TREE["README.md"]
            out = io.BytesIO()
            await a.projects.export_tar(t, snap.id, out)
            assert len(out.getvalue()) > 0
            r = await a.analysis.create(t, p, "lint", "ruff", "0.8", snapshot_id=snap.id)
            await a.analysis.put_payload(t, r.id, "out.txt", b"fine")
            r = await a.analysis.update(t, r.id, status="failed", error="crashed")
            assert (r.status, r.error) == ("failed", "crashed")
            assert await a.analysis.read_payload(t, r.id, "out.txt") == b"fine"
            assert (await a.projects.stats(t, p)).snapshots == 1
            backup = io.BytesIO()
            await a.projects.backup(t, p, bytes(32), backup)
            report = await a.projects.restore(t, bytes(32), io.BytesIO(backup.getvalue()), name="copy")
            assert report.files == len(TREE)
            await a.projects.delete(t, p)
            with pytest.raises(ate.NotFoundError):
                await a.projects.get(t, p)
        finally:
            await a.close()

    asyncio.run(main())
