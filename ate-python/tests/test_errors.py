"""The exception tree and its mapping from Rust error kinds."""

import pickle

import pytest

import ate
from ate import _ate

BUILTIN = {
    "NotFoundError": LookupError,
    "InvalidInputError": ValueError,
    "PermissionDeniedError": PermissionError,
    "UnavailableError": ConnectionError,
    "UnsupportedError": NotImplementedError,
}


def test_every_kind_maps_to_an_exported_subclass():
    mapping = _ate._error_classes()
    assert len(mapping) == 12
    kinds = [k for k, _ in mapping]
    assert len(set(kinds)) == 12
    for kind, name in mapping:
        cls = getattr(ate, name)
        assert issubclass(cls, ate.AteError), name
        assert name in ate.__all__
        if name in BUILTIN:
            assert issubclass(cls, BUILTIN[name]), name
        err = cls("message", kind, False)
        assert (err.kind, err.retryable, str(err)) == (kind, False, "message")


def test_errors_pickle_losslessly():
    err = ate.UnavailableError("db down", "unavailable", True)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is ate.UnavailableError
    assert (back.message, back.kind, back.retryable) == ("db down", "unavailable", True)


def test_invalid_database_urls():
    for url in ["", "nonsense", "http://example.com/db"]:
        with pytest.raises(ate.InvalidInputError) as info:
            ate.Ate(url)
        assert info.value.kind == "invalid_input"
        assert not info.value.retryable
    with pytest.raises(ate.UnsupportedError):
        ate.Ate("mysql://root@127.0.0.1/test")


def test_unreachable_database_is_retryable():
    with pytest.raises(ate.UnavailableError) as info:
        ate.Ate("postgres://nobody:hunter2@127.0.0.1:1/none")
    assert info.value.retryable
    assert info.value.kind == "unavailable"
    assert "hunter2" not in str(info.value)
    assert isinstance(info.value, ConnectionError)


def test_actor_is_validated():
    with pytest.raises(ate.InvalidInputError):
        ate.Ate("sqlite::memory:", actor="")
