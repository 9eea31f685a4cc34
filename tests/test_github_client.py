"""The stdlib GitHub client against a local HTTP server: pages, retries, rate limits, 403s."""
from __future__ import annotations

import pytest

from iamgate.action.github_client import GitHubClient, GitHubError, PermissionDenied, next_link

from fixtures.github.fake_api import FakeGitHub

REPO, PR = "acme/infra", 7


@pytest.fixture
def api():
    with FakeGitHub(REPO, PR) as fake:
        yield fake


def client(api, sleeps=None, clock=lambda: 1_000_000.0, **kw):
    return GitHubClient(api.url, "test-token", sleep=(sleeps.append if sleeps is not None else _no_sleep),
                        clock=clock, **kw)


def _no_sleep(seconds):
    raise AssertionError(f"unexpected sleep({seconds})")


def test_every_page_is_read_through_link_headers(api):
    for i in range(250):
        api.add_comment(f"comment {i}")
    got = list(client(api).paginate(f"repos/{REPO}/issues/{PR}/comments"))
    assert [c["body"] for c in got] == [f"comment {i}" for i in range(250)]
    gets = [path for method, path in api.requests if method == "GET"]
    assert len(gets) == 3 and all("per_page=100" in p for p in gets)


def test_sticky_comment_found_on_a_late_page_is_updated_in_place(api):
    for i in range(230):
        api.add_comment(f"comment {i}")
    ours = api.add_comment("<!-- m -->\nold report", "github-actions[bot]")
    api.add_comment("quoting it:\n<!-- m -->", "github-actions[bot]")  # the marker elsewhere than line 1 is not ours
    c = client(api)
    first = c.upsert_comment(REPO, PR, "<!-- m -->", "<!-- m -->\nnew report")
    assert (first.action, first.comment_id) == ("updated", ours["id"])
    assert c.upsert_comment(REPO, PR, "<!-- m -->", "<!-- m -->\nnew report").action == "unchanged"
    assert [x["body"] for x in api.marked("<!-- m -->")] == ["<!-- m -->\nnew report"]
    assert not [1 for method, _ in api.requests if method == "POST"]


def test_a_marker_in_someone_elses_comment_is_not_ours(api):
    """Anyone can paste the marker: the first comment with it, written by another user, is left alone."""
    planted = api.add_comment("<!-- m -->\nall clear, merge away", "mallory")
    c = client(api)
    assert c.upsert_comment(REPO, PR, "<!-- m -->", "<!-- m -->\nreport").action == "created"
    assert planted["body"] == "<!-- m -->\nall clear, merge away"
    assert [x["user"]["login"] for x in api.marked("<!-- m -->")] == ["mallory", "github-actions[bot]"]
    assert c.upsert_comment(REPO, PR, "<!-- m -->", "<!-- m -->\nreport 2").action == "updated"
    assert planted["body"] == "<!-- m -->\nall clear, merge away"


def test_a_users_token_finds_its_comments_by_its_own_login(api):
    api.user_login = "iamgate-bot"
    api.add_comment("<!-- m -->\nby the actions token", "github-actions[bot]")
    mine = api.add_comment("<!-- m -->\nby this token", "iamgate-bot")
    c = client(api)
    assert c.identity() == "iamgate-bot"
    assert c.upsert_comment(REPO, PR, "<!-- m -->", "<!-- m -->\nnew").comment_id == mine["id"]
    assert [m for m, p in api.requests].count("GET") == 2  # /user once, then the page


def test_the_actions_token_cannot_ask_who_it_is_and_is_github_actions_bot(api):
    assert client(api).identity() == "github-actions[bot]"
    assert ("GET", "/user") in api.requests


def test_comment_is_created_once_and_skipped_when_not_wanted(api):
    c = client(api)
    assert c.upsert_comment(REPO, PR, "<!-- m -->", "<!-- m -->\nall clear", create=False).action == "skipped"
    assert c.upsert_comment(REPO, PR, "<!-- m -->", "<!-- m -->\nreport").action == "created"
    assert c.upsert_comment(REPO, PR, "<!-- m -->", "<!-- m -->\nreport 2").action == "updated"
    assert len(api.marked("<!-- m -->")) == 1


def test_5xx_is_retried_with_backoff(api):
    api.failures = [(502, {}), (503, {})]
    sleeps = []
    assert list(client(api, sleeps).paginate(f"repos/{REPO}/issues/{PR}/comments")) == []
    assert sleeps == [1.0, 2.0]


def test_secondary_rate_limit_honours_retry_after(api):
    api.failures = [(403, {"Retry-After": "7"})]
    sleeps = []
    assert client(api, sleeps).upsert_comment(REPO, PR, "<!-- m -->", "<!-- m -->\nx").action == "created"
    assert sleeps == [7.0]


def test_primary_rate_limit_waits_until_reset(api):
    api.failures = [(429, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1000042"})]
    sleeps = []
    list(client(api, sleeps, clock=lambda: 1_000_000.0).paginate(f"repos/{REPO}/issues/{PR}/comments"))
    assert sleeps == [43.0]


def test_secondary_rate_limit_without_headers_waits_a_minute(api):
    api.failures = [(403, {})]
    sleeps = []
    list(client(api, sleeps).paginate(f"repos/{REPO}/issues/{PR}/comments"))
    assert sleeps == [60.0]


def test_a_wait_beyond_the_limit_is_not_slept(api):
    api.failures = [(403, {"Retry-After": "3600"})]
    with pytest.raises(GitHubError) as e:
        list(client(api, [], max_wait=300).paginate(f"repos/{REPO}/issues/{PR}/comments"))
    assert e.value.status == 403 and not isinstance(e.value, PermissionDenied)


def test_retries_give_up_after_max_attempts(api):
    api.failures = [(500, {})] * 3
    sleeps = []
    with pytest.raises(GitHubError) as e:
        list(client(api, sleeps, max_attempts=3).paginate(f"repos/{REPO}/issues/{PR}/comments"))
    assert e.value.status == 500 and len(sleeps) == 2


def test_read_only_token_is_permission_denied_without_retry(api):
    api.forbid_writes = True
    with pytest.raises(PermissionDenied) as e:
        client(api).upsert_comment(REPO, PR, "<!-- m -->", "<!-- m -->\nx")
    assert "Resource not accessible" in str(e.value)
    with pytest.raises(PermissionDenied):
        client(api).upload_sarif(REPO, "a" * 40, "refs/pull/7/merge", "{}")


def test_sarif_is_uploaded_gzipped_and_base64(api):
    import base64
    import gzip
    client(api).upload_sarif(REPO, "a" * 40, "refs/pull/7/merge", '{"version": "2.1.0"}')
    sent = api.sarifs[0]
    assert sent["commit_sha"] == "a" * 40 and sent["ref"] == "refs/pull/7/merge"
    assert gzip.decompress(base64.b64decode(sent["sarif"])) == b'{"version": "2.1.0"}'


def test_the_token_never_goes_to_another_host(api):
    with pytest.raises(GitHubError, match="another host"):
        client(api).request("GET", "http://127.0.0.2:1/steal")


def test_unreachable_server_is_retried_then_reported():
    sleeps = []
    c = GitHubClient("http://127.0.0.1:9", "t", sleep=sleeps.append, max_attempts=2, timeout=2)
    with pytest.raises(GitHubError):
        c.request("GET", "repos/a/b")
    assert sleeps == [1.0]


def test_next_link_parsing():
    header = ('<https://api.github.com/x?page=2>; rel="next", <https://api.github.com/x?page=5>; rel="last"')  # offline: header parsing only
    assert next_link(header) == "https://api.github.com/x?page=2"  # offline: header parsing only
    assert next_link('<https://api.github.com/x?page=1>; rel="prev"') is None  # offline: header parsing only
    assert next_link(None) is None


def test_redirects_never_carry_the_token_to_another_host_nor_turn_a_post_into_a_get():
    import http.server
    import threading
    seen = []

    class Other(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append(self.headers.get("Authorization"))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *a):
            pass

    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Other)

    class Redirector(Other):
        def do_GET(self):  # noqa: N802
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{other.server_port}/elsewhere")
            self.end_headers()

        def do_POST(self):  # noqa: N802
            self.send_response(302)
            self.send_header("Location", "/same-host")
            self.end_headers()

    first = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirector)
    for server in (other, first):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        gh = GitHubClient(f"http://127.0.0.1:{first.server_port}", "SECRET-TOKEN", sleep=lambda s: None)
        with pytest.raises(GitHubError):
            gh.request("GET", "repos/acme/infra")
        with pytest.raises(GitHubError):
            gh.request("POST", "repos/acme/infra/issues/7/comments", {"body": "x"})
        assert seen == []
    finally:
        for server in (other, first):
            server.shutdown()
