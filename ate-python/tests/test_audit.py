"""The audit surface: append, query, verify_chain, and tamper detection."""

import datetime
import pytest

import ate
from conftest import run_sql

UTC = datetime.timezone.utc


@pytest.fixture
def acme(client):
    return client.tenants.create(slug="acme", name="Acme")


def test_append_query_verify(client, acme):
    e = client.audit.append(
        acme.id, "user:alice", "authn_login_fail", outcome="failure",
        client_addr="203.0.113.9", user_agent="curl/8", metadata={"reason": "bad_password", "n": [1, 2]},
    )
    assert isinstance(e, ate.AuditEvent)
    assert (e.seq, e.action, e.outcome, e.client_addr) == (2, "authn_login_fail", "failure", "203.0.113.9")
    assert e.metadata == {"n": [1, 2], "reason": "bad_password"}
    assert len(e.hash) == 64 and e.tenant_id == acme.id
    client.audit.append(acme.id, "user:alice", "authn_login_success")
    client.audit.append(acme.id, "user:bob", "app_report_exported", target="report:q3")

    page = client.audit.query(acme.id)
    assert isinstance(page, ate.AuditPage)
    assert [x.seq for x in page] == [1, 2, 3, 4]
    assert page.items[1] == e
    assert page.items[2].prev_hash == e.hash
    assert [x.actor for x in client.audit.query(acme.id, actor="user:bob")] == ["user:bob"]
    assert len(client.audit.query(acme.id, action="authn_login_fail")) == 1
    newest = client.audit.query(acme.id, newest_first=True, limit=2)
    assert [x.seq for x in newest] == [4, 3] and newest.next_cursor
    assert [x.seq for x in client.audit.query(acme.id, newest_first=True, cursor=newest.next_cursor)] == [2, 1]
    now = datetime.datetime.now(UTC)
    assert len(client.audit.query(acme.id, since=now - datetime.timedelta(minutes=5))) == 4
    assert len(client.audit.query(acme.id, until=now - datetime.timedelta(minutes=5))) == 0

    report = client.audit.verify_chain(acme.id)
    assert isinstance(report, ate.ChainReport)
    assert report.intact and bool(report) and report.first_break is None
    assert report.events_checked == 4
    assert report.head == client.audit.head(acme.id)
    assert report.head.seq == 4


def test_bad_audit_input(client, acme):
    head = client.audit.head(acme.id)
    bad_calls = [
        dict(action="not_in_vocabulary"),
        dict(action="app_Bad"),
        dict(action="authz_fail", outcome="maybe"),
        dict(action="authz_fail", client_addr="999.1.1.1"),
        dict(action="authz_fail", metadata={"blob": "x" * 20000}),
        dict(action="authz_fail", metadata={"when": datetime.datetime.now()}),
        dict(action="authz_fail", metadata=[1, 2]),
        dict(action="authz_fail", actor="line\nbreak"),
    ]
    for kwargs in bad_calls:
        actor = kwargs.pop("actor", "user:x")
        action = kwargs.pop("action")
        with pytest.raises(ate.InvalidInputError):
            client.audit.append(acme.id, actor, action, **kwargs)
    assert client.audit.head(acme.id) == head, "nothing was appended"
    with pytest.raises(ate.InvalidInputError, match="naive"):
        client.audit.query(acme.id, since=datetime.datetime(2026, 1, 1))
    with pytest.raises(ate.InvalidInputError, match="reversed"):
        client.audit.query(acme.id, since=datetime.datetime(2027, 1, 1, tzinfo=UTC), until=datetime.datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(ate.NotFoundError):
        client.audit.append("01900000-0000-7000-8000-000000000000", "user:x", "authz_fail")


def test_suspended_tenants_keep_recording_deleted_ones_do_not(client, acme):
    client.tenants.suspend(acme.id, "review")
    client.audit.append(acme.id, "user:x", "authn_login_fail", outcome="failure")
    client.tenants.delete(acme.id)
    with pytest.raises(ate.ConflictError):
        client.audit.append(acme.id, "user:x", "authn_login_fail")
    assert client.audit.verify_chain(acme.id).intact


def test_tampering_is_reported(file_client, sqlite_path):
    t = file_client.tenants.create(slug="acme", name="Acme")
    for i in range(4):
        file_client.audit.append(t.id, f"user:{i}", "authn_login_fail", outcome="failure")
    run_sql(sqlite_path, "UPDATE audit_events SET actor = 'user:nobody' WHERE seq = 3")
    report = file_client.audit.verify_chain(t.id)
    assert not report.intact and not bool(report)
    b = report.first_break
    assert isinstance(b, ate.ChainBreak)
    assert (b.seq, b.problem) == (3, "content_modified")
    assert report.events_checked == 2
    assert "modified" in b.message

    # Undo the edit but cut off the two newest events.
    run_sql(
        sqlite_path,
        "DELETE FROM audit_events WHERE seq >= 4",
        "UPDATE audit_events SET actor = 'user:1' WHERE seq = 3",
    )
    b = file_client.audit.verify_chain(t.id).first_break
    assert (b.seq, b.problem, b.head_seq) == (3, "head_mismatch", 5)
