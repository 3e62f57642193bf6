"""Schema lookups stay inside a schema repository, whatever the URI (issue 22, item 1): an
absolute path, doubled separators, dot segments, percent-encoded dots, ``file:`` forms and a
symbolic link out of the repository all name no schema; a file that is not a JSON Schema is
refused with a warning logged once, never an error per event."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from eventbus.schemas import SchemaInvalidError, SchemaNotFoundError, SchemaRepository

SCHEMA = "title: test/event\ntype: object\n"


@pytest.fixture
def repository(tmp_path: Path) -> SchemaRepository:
    root = tmp_path / "repo"
    (root / "test" / "event").mkdir(parents=True)
    (root / "test" / "event" / "1.0.0.yaml").write_text(SCHEMA)
    # what a lookup must never reach: a YAML file outside, as the service's own configuration
    (tmp_path / "secret.yaml").write_text("title: secret\nsasl_password: hunter2\n")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "config.yaml").write_text("title: config\n")
    return SchemaRepository([root])


def outside(tmp_path: Path) -> str:
    return str(tmp_path / "secret")  # an absolute path, without its suffix


@pytest.mark.parametrize(
    "form",
    [
        "{abs}",  # absolute: root / "/x" is "/x"
        "/{abs}",  # "//x": PurePosixPath keeps "//" as a root of its own
        "//{abs}",
        "///{abs}",
        "{abs}.yaml",
        "/test/event/../../../{rel}",
        "/test/./../../{rel}",
        "/test/%2e%2e/%2e%2e/{rel}",
        "file://{abs}",
        "file:{abs}",
        "file:///{abs}",
        "http://example.org/{abs}",
        "http://example.org//{abs}",
    ],
)
def test_no_uri_escapes_the_repository(
    repository: SchemaRepository, tmp_path: Path, form: str
) -> None:
    uri = form.format(abs=outside(tmp_path), rel="secret")
    with pytest.raises(SchemaNotFoundError):
        repository.get(uri)


def test_the_same_names_inside_the_repository_are_found(
    repository: SchemaRepository, tmp_path: Path
) -> None:
    """The escaping forms are read as paths inside the repository (nothing else)."""
    root = repository.roots[0]
    nested = root / tmp_path.relative_to("/") / "secret.yaml"
    nested.parent.mkdir(parents=True)
    nested.write_text("title: inside\n")
    for uri in (outside(tmp_path), "/" + outside(tmp_path), "file://" + outside(tmp_path)):
        assert repository.get(uri).title == "inside", uri


def test_a_symbolic_link_out_of_the_repository_is_no_schema(
    repository: SchemaRepository, tmp_path: Path
) -> None:
    root = repository.roots[0]
    (root / "linked").symlink_to(tmp_path / "etc")
    (root / "test" / "leak.yaml").symlink_to(tmp_path / "secret.yaml")
    for uri in ("/linked/config", "/test/leak"):
        with pytest.raises(SchemaNotFoundError):
            repository.get(uri)
    # a link that stays inside is followed
    (root / "alias").symlink_to(root / "test")
    assert repository.get("/alias/event/1.0.0").title == "test/event"


@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe\x00binary", b"not: [yaml", b"- a list\n- not a schema\n", b"type: 12\n"],
)
def test_a_file_that_is_no_json_schema_is_refused_with_one_warning(
    repository: SchemaRepository, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    (repository.roots[0] / "test" / "bad.yaml").write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="eventbus.schemas"):
        for _event in range(3):
            with pytest.raises(SchemaInvalidError):
                repository.get("/test/bad")
    assert [r.levelname for r in caplog.records] == ["WARNING"]  # once, not per event
