"""A Django logout ends that login's sockets on every server of a fleet (AUTH_MODE=django).

Two daphnes on one Redis and one database, with the admin on so that Django's own login
and logout views exist: a staff user logs in through ``/admin/login/`` on server a, opens
a socket on server b with the session cookie and runs a turn there with the real CLI; the
logout, a POST to ``/admin/logout/`` on server a, reaches b's socket through Redis.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request

import pytest

from tests.support.live import ROOT, ChatClient, LiveServer

pytestmark = [pytest.mark.e2e, pytest.mark.database, pytest.mark.timeout(150)]

PASSWORD = "pw-for-the-logout-test-only"
DJANGO_MODE = {"AUTH_MODE": "django", "ADMIN_ENABLED": "true"}


class Browser:
    """A cookie jar and the admin's forms, as a browser of one login uses them."""

    def __init__(self) -> None:
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def cookie(self, name: str) -> str:
        return next(c.value for c in self.jar if c.name == name and c.value is not None)

    def post_form(self, server: LiveServer, path: str, fields: dict[str, str]) -> int:
        """POST a form of the admin with the CSRF token its login page set."""
        token = self.cookie("csrftoken")
        data = urllib.parse.urlencode({"csrfmiddlewaretoken": token, **fields}).encode()
        request = urllib.request.Request(server.http_url + path, data=data, method="POST")
        with self.opener.open(request, timeout=20) as answer:
            return answer.status

    def log_in(self, server: LiveServer, username: str) -> None:
        with self.opener.open(server.http_url + "/admin/login/", timeout=10) as answer:
            assert re.search(rb'name="csrfmiddlewaretoken"', answer.read())
        self.post_form(
            server, "/admin/login/?next=/admin/", {"username": username, "password": PASSWORD}
        )
        assert self.cookie("sessionid")

    def log_out(self, server: LiveServer) -> int:
        return self.post_form(server, "/admin/logout/", {})


def create_staff_user(server: LiveServer, username: str) -> None:
    """``manage.py createsuperuser`` on the fleet's database."""
    env = {**server.env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD, "AUTO_MIGRATE": "false"}
    result = subprocess.run(
        [sys.executable, "manage.py", "createsuperuser", "--noinput"]
        + ["--username", username, "--email", f"{username}@example.test"],
        cwd=ROOT,
        env={**env, "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]


async def test_a_logout_on_one_server_ends_the_logins_socket_on_another(fleet) -> None:
    a, b = fleet("a", **DJANGO_MODE), fleet("b", **DJANGO_MODE)
    create_staff_user(a, "olivia")
    laptop, phone = Browser(), Browser()
    laptop.log_in(a, "olivia")
    phone.log_in(b, "olivia")  # another login of the same user

    def socket_headers(browser: Browser) -> dict[str, str]:
        return {"Cookie": f"sessionid={browser.cookie('sessionid')}"}

    ended = socket_headers(laptop)  # the browser drops the cookie at the logout
    on_b = await ChatClient.connect(b.ws_url, additional_headers=ended)
    assert (await on_b.init("lo1"))["type"] == "ready"
    other = await ChatClient.connect(b.ws_url, additional_headers=socket_headers(phone))
    assert (await other.init("lo2"))["type"] == "ready"
    await on_b.begin("lo1", "[script:long_text]")

    assert laptop.log_out(a) == 200

    turn = await on_b.turn(timeout=30)  # the running turn ends whole
    closing = (await on_b.until("error"))[-1]
    await on_b.ws.wait_closed()
    assert turn[-1]["type"] == "complete" and turn[-1]["stopped"] is False
    assert (closing["code"], closing["recoverable"]) == ("TOKEN_EXPIRED", True)
    assert on_b.ws.close_code == 4401
    # The other login goes on; a new socket with the ended login's cookie is refused.
    assert (await other.message("lo2", "[script:echo]"))[-1]["type"] == "complete"
    again = await ChatClient.connect(b.ws_url, additional_headers=ended)
    assert (await again.recv())["code"] == "UNAUTHORIZED"
    await other.close()
    await again.close()
