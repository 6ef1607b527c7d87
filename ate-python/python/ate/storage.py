"""Encrypted object storage: ``a.storage`` on a client opened with ``storage_url`` and
``master_key``.

>>> import ate, io, os
>>> a = ate.Ate("sqlite::memory:", storage_url="memory://", master_key=os.urandom(32))
>>> acme = a.tenants.create(slug="acme", name="Acme Corp").id
>>> info = a.storage.put(acme, "reports/q3.csv", b"region,total\\nemea,42\\n", content_type="text/csv")
>>> (info.size, info.key_version)
(21, 1)
>>> a.storage.get_range(acme, "reports/q3.csv", 0, 6)
b'region'
>>> _ = a.storage.put(acme, "dumps/1.bin", io.BytesIO(os.urandom(100_000)))  # streamed in parts
>>> [o.path for o in a.storage.list(acme, "reports/")]
['reports/q3.csv']
>>> with a.storage.open(acme, "dumps/1.bin") as reader:
...     total = sum(len(piece) for piece in reader)
>>> total
100000
>>> with a.storage.writer(acme, "logs/today.txt", content_type="text/plain") as w:  # streamed
...     _ = w.write(b"first line\\n")
...     _ = w.write(b"second line\\n")
>>> page = a.storage.list_dir(acme)   # one level: objects here, subdirectories once each
>>> [o.path for o in page.objects], page.directories
([], ['dumps/', 'logs/', 'reports/'])

Each tenant's objects are encrypted under its own data keys (Cobblestone-256), wrapped
under the master key; ``rotate_key`` starts a new key version, ``reencrypt`` moves old
objects to it, ``destroy_keys`` shreds a tenant's data. ``writer`` streams a put from your
own code (``write`` as often as needed, then ``commit``; nothing is visible before), and
``list_dir`` lists one directory level the way S3 does with the delimiter ``/``. File
objects (anything with ``read(n)`` for a put, ``write(b)`` for ``download``) are streamed,
never read whole. Every byte returned has been authenticated; tampering raises
``ate.IntegrityError``.

Calls act as the client's principal: ``a.acting_as(principal).storage`` acts for a verified
user, who needs ``storage:read``, ``storage:write`` or ``storage:delete`` in the object's
tenant (and ``key:read``, ``key:rotate``, ``key:destroy`` for key management); another
tenant's objects raise ``ate.PermissionDeniedError``. ``ate.AsyncAte`` offers the same
methods as awaitables (``AsyncStorage``, ``AsyncObjectReader``).

``a.storage.verify(tenant_id, read_all=False, repair=False, grace=None)`` is the operator's
integrity check of a tenant's objects (a platform administrator's task): every index entry has
its blob, of the right size, with a header that authenticates under its key (``read_all``:
every byte decrypts and matches its SHA-256), and every blob is referenced or reported as an
orphan. It returns a ``VerifyReport`` and changes nothing unless ``repair=True``, which deletes
orphan blobs older than ``grace`` (default one hour).
"""

from ate._ate import (
    AsyncObjectReader,
    AsyncObjectWriter,
    AsyncStorage,
    DirPage,
    GcReport,
    KeyInfo,
    ObjectInfo,
    ObjectPage,
    ObjectReader,
    ObjectWriter,
    ReencryptProgress,
    Storage,
    VerifyProblem,
    VerifyReport,
)

__all__ = [
    "Storage",
    "AsyncStorage",
    "ObjectReader",
    "AsyncObjectReader",
    "ObjectWriter",
    "AsyncObjectWriter",
    "ObjectInfo",
    "DirPage",
    "ObjectPage",
    "KeyInfo",
    "ReencryptProgress",
    "GcReport",
    "VerifyReport",
    "VerifyProblem",
]
