"""System checks on the workspace settings, by id."""

from __future__ import annotations

from django.core.checks import run_checks

from workspaces.checks import check_workspace_limits, check_workspace_root


def ids(messages):
    return [message.id for message in messages]


def test_existing_writable_root_passes(settings, tmp_path):
    settings.WORKSPACE_ROOT = tmp_path
    assert check_workspace_root(None) == []


def test_creatable_root_passes_and_is_not_created(settings, tmp_path):
    settings.WORKSPACE_ROOT = tmp_path / "not" / "yet"
    assert check_workspace_root(None) == []
    assert not (tmp_path / "not").exists()


def test_root_under_a_file_is_e001(settings, tmp_path):
    (tmp_path / "file").write_text("x")
    settings.WORKSPACE_ROOT = tmp_path / "file" / "sessions"
    assert ids(check_workspace_root(None)) == ["workspaces.E001"]


def test_relative_root_is_e001(settings):
    settings.WORKSPACE_ROOT = "sessions"
    assert ids(check_workspace_root(None)) == ["workspaces.E001"]


def test_consistent_limits_pass(settings):
    settings.WORKSPACE_MAX_FILE_BYTES = 10
    settings.WORKSPACE_MAX_TOTAL_BYTES = 10
    assert check_workspace_limits(None) == []


def test_file_limit_above_total_limit_is_e002(settings):
    settings.WORKSPACE_MAX_FILE_BYTES = 11
    settings.WORKSPACE_MAX_TOTAL_BYTES = 10
    assert ids(check_workspace_limits(None)) == ["workspaces.E002"]


def test_checks_are_registered(settings, tmp_path):
    settings.WORKSPACE_ROOT = tmp_path / "file" / "sessions"
    (tmp_path / "file").write_text("x")
    settings.WORKSPACE_MAX_FILE_BYTES = 11
    settings.WORKSPACE_MAX_TOTAL_BYTES = 10
    found = ids(run_checks())
    assert "workspaces.E001" in found
    assert "workspaces.E002" in found
