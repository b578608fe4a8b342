"""Every schedule name create_schedule accepts is reachable in the dashboard and the API.

Names like the wizard's and the preview's old paths (``new``, ``preview``), like a
sub-route (``edit``, ``nightly/edit`` next to ``nightly``), with slashes (``a/b``,
``a/b/pause``) and with characters a URL escapes (``r+1@db:5.x``): each one's page,
API object, form actions (through the links the page itself renders, with its CSRF
token) and edit wizard are its own; the wizard and the preview live under
``/schedules/-/`` (no name starts with ``-``), and their old paths keep working while
no schedule takes them. One of them is opened and paused in Chromium.
"""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.schedule_helpers import create, schedule
from tests.web_helpers import (  # noqa: F401 - fixtures
    ADMIN,
    WebFactory,
    browser_fixture,
    use_credential,
    wait_for,
    web_login_fixture,
    web_server_fixture,
)

Conn = psycopg.Connection[Any]
NAMES = ("new", "preview", "edit", "nightly", "nightly/edit", "a/b", "a/b/pause", "r+1@db:5.x")
PREVIEW_QUERY = {"cron": "0 3 * * *", "tz": "UTC", "count": "2"}


def path_of(name: str) -> str:
    """A schedule's path segment as the dashboard's links write it."""
    return quote(name, safe="")


def shown_name(page: str) -> str:
    match = re.search(r'<span id="schedule-name">([^<]*)</span>', page)
    assert match is not None, page[:500]
    return html.unescape(match.group(1))


def action_of(page: str, button: str) -> str:
    """The action URL of the form holding the button with id ``button``."""
    for form in re.findall(r"<form [^>]*>.*?</form>", page, flags=re.DOTALL):
        if f'id="{button}"' in form:
            action = re.search(r'action="([^"]*)"', form)
            assert action is not None
            return html.unescape(action.group(1))
    raise AssertionError(f"no form with button {button}")


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]*)"', page)
    assert match is not None
    return match.group(1)


def test_the_old_paths_work_while_no_schedule_takes_them(web_server: WebFactory,
                                                         conn: Conn) -> None:
    create(conn, "nightly", cron_expr="0 3 * * *")
    server = web_server()
    with httpx.Client(base_url=server.url) as http:
        for path in ("/schedules/-/new", "/schedules/new"):
            r = http.get(path)
            assert r.status_code == 200, (path, r.text)
            assert 'id="step-schedule"' in r.text
            assert 'id="schedule-name"' not in r.text
        for path in ("/schedules/-/edit/nightly", "/schedules/nightly/edit"):
            r = http.get(path)
            assert r.status_code == 200, (path, r.text)
            assert "Edit schedule nightly" in r.text
        for path in ("/api/v1/schedules/-/preview", "/api/v1/schedules/preview"):
            r = http.get(path, params=PREVIEW_QUERY)
            assert r.status_code == 200, (path, r.text)
            assert [o["local"][-5:] for o in r.json()] == ["03:00", "03:00"]
        for name in NAMES:  # none of them exists yet (nightly aside)
            if name != "nightly":
                r = http.get(f"/api/v1/schedules/{path_of(name)}/no-such-route")
                assert r.status_code == 404


def test_every_name_has_its_page_api_object_actions_and_wizard(web_server: WebFactory,
                                                                conn: Conn) -> None:
    for name in NAMES:
        create(conn, name, cron_expr="0 3 * * *")
    server = web_server()
    with httpx.Client(base_url=server.url) as http:
        listing = http.get("/schedules").text
        for name in NAMES:
            link = f'href="/schedules/{html.escape(path_of(name))}"'
            assert link in listing, name
            page = http.get(f"/schedules/{path_of(name)}")
            assert page.status_code == 200, (name, page.text)
            assert shown_name(page.text) == name
            api = http.get(f"/api/v1/schedules/{path_of(name)}")
            assert api.status_code == 200, (name, api.text)
            assert api.json()["schedule"]["name"] == name
            # the form the page renders acts on this schedule, not on a prefix of its name
            r = http.post(action_of(page.text, "pause"), data={"csrf_token": csrf_of(page.text)})
            assert r.status_code == 303, (name, r.text)
            assert schedule(conn, name)["paused_at"] is not None, name
            others = [n for n in NAMES if n != name and schedule(conn, n)["paused_at"]]
            assert others == list(NAMES[:NAMES.index(name)]), name
            edit = re.search(r'href="([^"]*)" id="edit"', page.text)
            assert edit is not None
            wizard = http.get(html.unescape(edit.group(1)))
            assert wizard.status_code == 200, (name, wizard.text)
            assert f"Edit schedule {html.escape(name)}" in wizard.text
        # a slash may also stay unescaped: the name is the rest of the path
        assert shown_name(http.get("/schedules/a/b/pause").text) == "a/b/pause"
        assert http.get("/api/v1/schedules/a/b").json()["schedule"]["name"] == "a/b"
        # the old paths now belong to the schedules named so
        assert shown_name(http.get("/schedules/new").text) == "new"
        assert shown_name(http.get("/schedules/nightly/edit").text) == "nightly/edit"
        assert http.get("/api/v1/schedules/preview",
                        params=PREVIEW_QUERY).json()["schedule"]["name"] == "preview"
        # while the wizard and the preview stay where no name can be
        assert 'id="step-schedule"' in http.get("/schedules/-/new").text
        assert "Edit schedule nightly<" in http.get("/schedules/-/edit/nightly").text
        preview = http.get("/api/v1/schedules/-/preview", params=PREVIEW_QUERY)
        assert len(preview.json()) == 2


@pytest.mark.parametrize("name", ["a/b/pause", "nightly/edit"])
def test_api_actions_reach_the_named_schedule(web_server: WebFactory, conn: Conn,
                                              name: str) -> None:
    for n in ("a/b", "nightly", name):
        create(conn, n, cron_expr="0 3 * * *")
    server = web_server(credentials=(ADMIN,))
    with server.client(ADMIN) as http:
        r = http.post(f"/api/v1/schedules/{path_of(name)}/pause")
        assert r.status_code == 200, r.text
        assert r.json()["name"] == name
        r = http.post(f"/api/v1/schedules/{path_of(name)}/update", json={"tz": "Europe/Berlin"})
        assert (r.status_code, r.json()["tz"]) == (200, "Europe/Berlin")
        r = http.post(f"/api/v1/schedules/{name}/resume")  # unescaped slashes as well
        assert (r.status_code, r.json()["name"]) == (200, name)
    assert schedule(conn, name)["paused_at"] is None
    assert schedule(conn, name)["tz"] == "Europe/Berlin"
    assert [schedule(conn, n)["tz"] for n in ("a/b", "nightly")] == ["UTC", "UTC"]


def test_a_name_with_a_slash_in_the_browser(web_server: WebFactory, conn: Conn,
                                            browser: WebDriver) -> None:
    for name in ("a", "a/b", "new"):
        create(conn, name, cron_expr="0 3 * * *")
    server = web_server(credentials=(ADMIN,))
    use_credential(browser, ADMIN)
    browser.get(server.url + "/schedules")
    link = wait_for(browser, lambda d: d.find_element(
        By.CSS_SELECTOR, 'tr.schedule[data-schedule="a/b"] a'))
    link.click()
    wait_for(browser, lambda d: d.find_element(By.ID, "schedule-name").text == "a/b")
    browser.find_element(By.ID, "pause").click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "resume"))
    assert browser.find_element(By.ID, "schedule-name").text == "a/b"
    assert schedule(conn, "a/b")["paused_at"] is not None
    assert schedule(conn, "a")["paused_at"] is None
    browser.get(server.url + "/schedules")
    wait_for(browser, lambda d: d.find_element(
        By.CSS_SELECTOR, 'tr.schedule[data-schedule="new"] a')).click()
    wait_for(browser, lambda d: d.find_element(By.ID, "schedule-name").text == "new")
    browser.get(server.url + "/schedules")
    wait_for(browser, lambda d: d.find_element(By.ID, "new-schedule")).click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "step-schedule"))
    assert browser.current_url == server.url + "/schedules/-/new"
