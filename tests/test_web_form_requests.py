"""A dashboard form sent twice repeats its first call: each rendered form carries a
random request key (next to its CSRF token) that the action takes as its
Idempotency-Key, so a double click or a browser's resubmit of Retry does not fail
(the job is no longer dead) and a resubmitted Requeue makes no second job."""

from __future__ import annotations

import re
from typing import Any

import httpx
import psycopg

from tests.helpers import scalar
from tests.web_helpers import (  # noqa: F401 - fixtures
    WebFactory,
    dead_job,
    web_login_fixture,
    web_server_fixture,
)

Conn = psycopg.Connection[Any]


def form_fields(html: str, action: str) -> dict[str, str]:
    """The hidden fields of the form posting to ``action`` in ``html``."""
    form = re.search(r'<form method="post" action="' + re.escape(action) + r'">(.*?)</form>',
                     html, flags=re.S)
    assert form is not None, action
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form[1]))


def test_a_retry_form_sent_twice_retries_once_and_both_answers_agree(
        web_server: WebFactory, conn: Conn) -> None:
    job_id = dead_job(conn, "emails")
    server = web_server()
    with httpx.Client(base_url=server.url) as http:
        page = http.get(f"/jobs/{job_id}")
        fields = form_fields(page.text, f"/jobs/{job_id}/retry")
        assert set(fields) == {"csrf_token", "pgbatch_request"}
        first = http.post(f"/jobs/{job_id}/retry", data=fields)
        assert first.status_code == 303, first.text
        # the job is pending now: a second retry without the key is refused
        again = http.post(f"/jobs/{job_id}/retry", data={**fields, "pgbatch_request": "other"})
        assert again.status_code == 409, again.text
        assert "InvalidState" in again.text
        # the same form again: the first answer, nothing changes
        before = scalar(conn, "select count(*) from pgbatch.job_request")
        second = http.post(f"/jobs/{job_id}/retry", data=fields)
        assert second.status_code == 303, second.text
        assert second.headers["location"] == first.headers["location"]
        assert scalar(conn, "select count(*) from pgbatch.job_request") == before == 1
        # two renderings of the page are two forms: two keys
        other = form_fields(http.get(f"/jobs/{job_id}").text, f"/jobs/{job_id}/cancel")
        assert other["pgbatch_request"] != fields["pgbatch_request"]
    assert scalar(conn, "select state from pgbatch.job where id = %s", [job_id]) == "pending"


def test_a_requeue_form_sent_twice_makes_one_job(web_server: WebFactory, conn: Conn) -> None:
    job_id = dead_job(conn, "emails")
    server = web_server()
    with httpx.Client(base_url=server.url) as http:
        fields = form_fields(http.get(f"/jobs/{job_id}").text, f"/jobs/{job_id}/requeue")
        first = http.post(f"/jobs/{job_id}/requeue", data=fields)
        second = http.post(f"/jobs/{job_id}/requeue", data=fields)
        assert first.status_code == second.status_code == 303, (first.text, second.text)
        assert first.headers["location"] == second.headers["location"]
        assert str(job_id) not in first.headers["location"]  # the new job's page
    assert scalar(conn, "select count(*) from pgbatch.job where queue = 'emails'") == 1
