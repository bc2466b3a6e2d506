"""The read-only Django admin (ADMIN_ENABLED): who may see it, and what it shows.

``INSTALLED_APPS`` is decided when the settings are imported, so the suite's own process
(ADMIN_ENABLED off) checks that the admin is absent, and runs this same file again in a
pytest subprocess with ADMIN_ENABLED=true, where the tests marked ``enabled`` run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from redis import Redis

from chat.cluster.keys import lease_key
from chat.models import ChatSession, TurnRecord
from tests.support.live import ROOT
from tests.support.ports import free_port

enabled = pytest.mark.skipif(not settings.ADMIN_ENABLED, reason="runs with ADMIN_ENABLED=true")
disabled = pytest.mark.skipif(settings.ADMIN_ENABLED, reason="runs with ADMIN_ENABLED off")


@disabled
@pytest.mark.django_db
def test_admin_is_not_installed_and_answers_404_when_off(client) -> None:
    assert "django.contrib.admin" not in settings.INSTALLED_APPS
    assert client.get("/admin/").status_code == 404
    assert client.get("/admin/login/").status_code == 404


@disabled
def test_the_admin_tests_pass_with_admin_enabled() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
        cwd=ROOT,
        env={**os.environ, "ADMIN_ENABLED": "true"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and " failed" not in result.stdout


@pytest.fixture
def records(db):
    session = ChatSession.objects.create(
        session_id="s-admin-1", owner="alice", public_id="dash1", message_count=2, cost_usd=0.5
    )
    first = TurnRecord.objects.create(
        session=session, state_id="st-1", client_message_id="m1", cost_usd=0.25
    )
    second = TurnRecord.objects.create(
        session=session, state_id="st-2", client_message_id="m2", cost_usd=0.125
    )
    day = datetime(2026, 11, 30, 12, tzinfo=UTC)
    TurnRecord.objects.filter(pk__in=[first.pk, second.pk]).update(created_at=day)
    TurnRecord.objects.filter(pk=first.pk).update(
        outcome="complete",
        duration_ms=4200,
        first_text_ms=640,
        input_tokens=1234,
        output_tokens=567,
    )
    TurnRecord.objects.filter(pk=second.pk).update(outcome="MODEL_UNAVAILABLE", duration_ms=900)
    return session


def staff(*, superuser: bool = False, view: bool = True) -> User:
    user = User.objects.create_user("staff", password="pw", is_staff=True, is_superuser=superuser)
    if view:
        user.user_permissions.add(
            *Permission.objects.filter(codename__in=["view_chatsession", "view_turnrecord"])
        )
    return user


@enabled
def test_staff_sees_a_session_in_the_sessions_list(client, records) -> None:
    client.force_login(staff())
    page = client.get("/admin/chat/chatsession/").content.decode()
    assert "s-admin-1" in page
    assert "alice" in page
    assert "0.5000" in page
    assert "Live on (server id)" in page


@enabled
def test_the_sessions_list_shows_the_server_each_session_is_live_on(
    client, records, settings, redis_server
) -> None:
    ChatSession.objects.create(session_id="s-admin-idle", owner="bob")
    settings.REDIS_URL = redis_server.url
    redis = Redis.from_url(redis_server.url)
    redis.set(lease_key("s-admin-1"), "server-b-4242 7")  # as another server holds it
    client.force_login(staff())

    page = client.get("/admin/chat/chatsession/").content.decode()

    row = {key: _row(page, key) for key in ("s-admin-1", "s-admin-idle")}
    assert "server-b-4242" in row["s-admin-1"]
    assert "server-b" not in row["s-admin-idle"]
    redis.close()


@enabled
def test_the_sessions_list_says_when_redis_does_not_answer(client, records, settings) -> None:
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    client.force_login(staff())

    response = client.get("/admin/chat/chatsession/")

    assert response.status_code == 200
    assert "unknown: Redis does not answer" in _row(response.content.decode(), "s-admin-1")


def _row(page: str, text: str) -> str:
    """The table row of the admin's list page that holds ``text``."""
    (row,) = [row for row in page.split("<tr") if text in row and "</td>" in row]
    return row


@enabled
def test_the_admin_stylesheet_is_served_without_collectstatic(client) -> None:
    response = client.get("/static/admin/css/base.css")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    assert b"body" in b"".join(response.streaming_content)


@enabled
def test_sessions_are_searchable_by_owner(client, records) -> None:
    ChatSession.objects.create(session_id="s-admin-2", owner="bob")
    client.force_login(staff())
    page = client.get("/admin/chat/chatsession/", {"q": "bob"}).content.decode()
    assert "s-admin-2" in page
    assert "s-admin-1" not in page


@enabled
def test_staff_sees_the_turns_with_duration_tokens_and_outcome(client, records) -> None:
    client.force_login(staff())
    page = client.get("/admin/chat/turnrecord/").content.decode()
    assert "0.2500" in page and "0.1250" in page
    assert "4.2" in page
    assert "1234 / 567" in page
    assert "MODEL_UNAVAILABLE" in page
    assert "0.64" in page  # the first text


@enabled
def test_the_per_day_summary_shows_the_summed_cost(client, records) -> None:
    client.force_login(staff())
    response = client.get("/admin/chat/turnrecord/per-day/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "2026-11-30" in page
    assert '<td class="cost">0.3750</td>' in page


@enabled
def test_an_anonymous_user_is_sent_to_the_login(client, records) -> None:
    for url in ("/admin/", "/admin/chat/chatsession/", "/admin/chat/turnrecord/per-day/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


@enabled
def test_a_user_who_is_not_staff_is_refused(client, records) -> None:
    user = User.objects.create_user("plain", password="pw")
    client.force_login(user)
    response = client.get("/admin/chat/chatsession/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    response = client.post("/admin/login/", {"username": "plain", "password": "pw"})
    assert "_auth_user_id" not in client.session or response.status_code == 200
    assert client.get("/admin/chat/chatsession/").status_code == 302


@enabled
def test_staff_without_view_permission_is_refused(client, records) -> None:
    client.force_login(staff(view=False))
    assert client.get("/admin/chat/chatsession/").status_code == 403
    assert client.get("/admin/chat/turnrecord/per-day/").status_code == 403


@enabled
def test_nobody_may_add_change_or_delete_not_even_a_superuser(client, records) -> None:
    client.force_login(staff(superuser=True))
    base = f"/admin/chat/chatsession/{records.pk}"
    assert client.get("/admin/chat/chatsession/add/").status_code == 403
    assert client.post(f"{base}/change/", {"owner": "mallory"}).status_code == 403
    assert client.get(f"{base}/delete/").status_code == 403
    assert client.post(f"{base}/delete/", {"post": "yes"}).status_code == 403
    turn = records.turns.first()
    assert (
        client.post(f"/admin/chat/turnrecord/{turn.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    records.refresh_from_db()
    assert records.owner == "alice"
    assert TurnRecord.objects.count() == 2
    # Viewing a record is allowed, read-only: no save button.
    page = client.get(f"{base}/change/").content.decode()
    assert "s-admin-1" in page and 'name="_save"' not in page


@enabled
def test_the_login_form_keeps_csrf_protection(records) -> None:
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    staff()
    response = strict.post("/admin/login/", {"username": "staff", "password": "pw"})
    assert response.status_code == 403
