"""Issue 16: the admin tool's errors say what to do next, and reading commands never create a
database where there is none."""

from __future__ import annotations

from services.results.admin import run
from services.results.db import Database, sqlite_url


def test_create_key_for_an_unknown_tenant_names_both_fixes(tmp_path, capsys):
    assert run(["--data-dir", str(tmp_path), "create-key", "nosuch"]) == 1
    err = capsys.readouterr().err
    assert "tenant 'nosuch' not found" in err
    assert "hindsight-admin create-tenant nosuch" in err
    assert "hindsight-admin create-key nosuch --create-tenant" in err


def test_list_tenants_of_an_empty_directory_creates_nothing_and_says_why(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(["--data-dir", str(empty), "list-tenants"]) == 1
    err = capsys.readouterr().err
    assert f"no Hindsight database in {empty}" in err and "--data-dir" in err
    assert list(empty.iterdir()) == []


def test_list_tenants_without_tenants_says_how_to_create_one(tmp_path, capsys):
    db = Database(sqlite_url(tmp_path))
    db.migrate()
    db.close()
    assert run(["--data-dir", str(tmp_path), "list-tenants"]) == 0
    out = capsys.readouterr()
    assert out.out == "" and "no tenants yet: hindsight-admin create-tenant NAME" in out.err
    assert run(["--data-dir", str(tmp_path), "create-tenant", "acme"]) == 0
    assert run(["--data-dir", str(tmp_path), "list-tenants"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "acme"
