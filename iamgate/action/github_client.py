"""A small GitHub REST client on the standard library only.

Pages are read with `per_page=100` and followed through `Link` headers. 5xx answers, network
errors and rate limits (primary and secondary) are retried, honouring `retry-after` and
`x-ratelimit-reset`; the sleep is injectable so tests never wait. A 403 that is not a rate
limit is a `PermissionDenied`: a read-only token (a fork's pull request) is not a failure.
"""
from __future__ import annotations

import base64
import gzip
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from ..formats.comment import MAX_BODY_BYTES, MAX_BODY_CHARS

API_VERSION = "2022-11-28"
PER_PAGE = 100
RETRY_STATUSES = {500, 502, 503, 504}
ACTIONS_BOT = "github-actions[bot]"  # the author of what the default GITHUB_TOKEN posts
SECONDARY_LIMIT_WAIT = 60.0  # GitHub: "wait for at least one minute" when no header says otherwise
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class GitHubError(Exception):
    def __init__(self, status: int | None, message: str, url: str = ""):
        super().__init__(f"GitHub API {status or 'error'}: {message}" + (f" ({url})" if url else ""))
        self.status = status
        self.message = message
        self.url = url


class PermissionDenied(GitHubError):
    """The token may not do this (403): typical of a pull request from a fork."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str] = field(default_factory=dict, hash=False)
    data: Any = None


@dataclass(frozen=True)
class CommentResult:
    action: str  # created | updated | unchanged | skipped
    comment_id: int | None = None
    url: str | None = None


def next_link(link_header: str | None) -> str | None:
    if not link_header:
        return None
    m = _LINK_NEXT.search(link_header)
    return m.group(1) if m else None


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for k, v in headers.items():
        if k.lower() == name:
            return v
    return None


class GitHubClient:
    def __init__(self, api_url: str, token: str | None, *, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time, max_attempts: int = 5, timeout: float = 30.0,
                 max_wait: float = 300.0):
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.sleep = sleep
        self.clock = clock
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.max_wait = max_wait
        self._login: str | None = None

    # -- transport -------------------------------------------------------------
    def url(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        url = path if path.startswith(("http://", "https://")) else self.api_url + "/" + path.lstrip("/")
        if params:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
        return url

    def _same_origin(self, url: str) -> bool:
        a, b = urllib.parse.urlsplit(self.api_url), urllib.parse.urlsplit(url)
        return (a.scheme, a.netloc) == (b.scheme, b.netloc)

    def request(self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None) -> Response:
        url = self.url(path, params)
        if not self._same_origin(url):
            raise GitHubError(None, "refusing to send the token to another host", url)
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION,
                   "User-Agent": "iamgate"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in range(1, self.max_attempts + 1):
            req = urllib.request.Request(url, data=data, method=method, headers=headers)
            try:
                with _OPENER.open(req, timeout=self.timeout) as resp:
                    raw = resp.read()
                    return Response(resp.status, dict(resp.headers.items()), json.loads(raw) if raw.strip() else None)
            except urllib.error.HTTPError as e:
                resp_headers = dict(e.headers.items()) if e.headers else {}
                message = _error_message(e.read())
                wait = self._retry_wait(e.code, resp_headers, message, attempt)
                if wait is None or attempt == self.max_attempts:
                    denied = e.code == 403 and not _is_rate_limit(resp_headers, message)
                    raise (PermissionDenied if denied else GitHubError)(e.code, message, url) from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                if attempt == self.max_attempts:
                    raise GitHubError(None, str(getattr(e, "reason", e)), url) from None
                wait = _backoff(attempt)
            self.sleep(wait)
        raise AssertionError("unreachable")

    def _retry_wait(self, status: int, headers: Mapping[str, str], message: str, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None when the answer is final."""
        rate_limited = status == 429 or (status == 403 and _is_rate_limit(headers, message))
        if status not in RETRY_STATUSES and not rate_limited:
            return None
        retry_after = _header(headers, "retry-after")
        if retry_after is not None:
            try:
                wait = float(retry_after)
            except ValueError:
                wait = _backoff(attempt)
        elif _header(headers, "x-ratelimit-remaining") == "0" and _header(headers, "x-ratelimit-reset"):
            try:
                wait = max(0.0, float(_header(headers, "x-ratelimit-reset")) - self.clock()) + 1
            except ValueError:
                wait = SECONDARY_LIMIT_WAIT
        elif rate_limited:
            wait = SECONDARY_LIMIT_WAIT
        else:
            wait = _backoff(attempt)
        return wait if wait <= self.max_wait else None

    # -- pagination ------------------------------------------------------------
    def paginate(self, path: str, params: Mapping[str, Any] | None = None) -> Iterator[Any]:
        url: str | None = self.url(path, {**(params or {}), "per_page": PER_PAGE})
        while url:
            resp = self.request("GET", url)
            items = resp.data if isinstance(resp.data, list) else []
            yield from items
            url = next_link(_header(resp.headers, "link"))

    # -- identity ----------------------------------------------------------------
    def identity(self) -> str:
        """The login that the token's comments carry. `GET /user` answers for a user's token; the
        Actions GITHUB_TOKEN (an installation token) gets 403 there, and posts as github-actions[bot]."""
        if self._login is None:
            try:
                data = self.request("GET", "user").data
            except GitHubError as e:
                if e.status not in (401, 403, 404):
                    raise
                data = None
            login = data.get("login") if isinstance(data, dict) else None
            self._login = login if isinstance(login, str) and login else ACTIONS_BOT
        return self._login

    # -- pull request comments -----------------------------------------------
    def find_comment(self, repo: str, number: int, marker: str, author: str | None = None) -> dict | None:
        """Our sticky comment: the first whose first line is the marker and whose author is the
        token's own identity (anyone can paste a marker), read over every page."""
        author = author or self.identity()
        for c in self.paginate(f"repos/{repo}/issues/{number}/comments"):
            body = c.get("body") or ""
            if body.split("\n", 1)[0].strip() == marker and is_author(c, author):
                return c
        return None

    def upsert_comment(self, repo: str, number: int, marker: str, body: str, create: bool = True) -> CommentResult:
        """PATCH our comment when it exists, otherwise POST one (unless `create` is false)."""
        if len(body) > MAX_BODY_CHARS or len(body.encode()) > MAX_BODY_BYTES:
            raise GitHubError(None, f"the comment body is {len(body)} characters, over GitHub's {MAX_BODY_CHARS}")
        existing = self.find_comment(repo, number, marker)
        if existing is not None:
            if existing.get("body") == body:
                return CommentResult("unchanged", existing.get("id"), existing.get("html_url"))
            resp = self.request("PATCH", f"repos/{repo}/issues/comments/{existing['id']}", {"body": body})
            return CommentResult("updated", existing.get("id"), (resp.data or {}).get("html_url"))
        if not create:
            return CommentResult("skipped")
        resp = self.request("POST", f"repos/{repo}/issues/{number}/comments", {"body": body})
        data = resp.data or {}
        return CommentResult("created", data.get("id"), data.get("html_url"))

    # -- code scanning ---------------------------------------------------------
    def upload_sarif(self, repo: str, commit_sha: str, ref: str, sarif_text: str) -> Response:
        payload = base64.b64encode(gzip.compress(sarif_text.encode())).decode()
        return self.request("POST", f"repos/{repo}/code-scanning/sarifs",
                            {"commit_sha": commit_sha, "ref": ref, "sarif": payload, "tool_name": "iamgate"})


def is_author(comment: dict, login: str) -> bool:
    user = comment.get("user")
    return isinstance(user, dict) and isinstance(user.get("login"), str) and user["login"].lower() == login.lower()


def _error_message(raw: bytes) -> str:
    try:
        data = json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace").strip()[:300]
    if not isinstance(data, dict):
        return str(data)[:300]
    details = [e.get("message") for e in data.get("errors") or () if isinstance(e, dict) and e.get("message")]
    return str(data.get("message", data)) + (f" ({'; '.join(map(str, details))})"[:300] if details else "")


def _is_rate_limit(headers: Mapping[str, str], message: str) -> bool:
    return (_header(headers, "retry-after") is not None or _header(headers, "x-ratelimit-remaining") == "0"
            or "rate limit" in message.lower())


def _backoff(attempt: int) -> float:
    return float(min(2 ** (attempt - 1), 30))


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only for GET and only to the same scheme and host: the token must never
    reach another host, and a POST must not silently become a GET."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        old, new = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(newurl)
        if req.get_method() != "GET" or (old.scheme, old.netloc) != (new.scheme, new.netloc):
            raise urllib.error.HTTPError(req.full_url, code, f"refusing a redirect to {newurl}", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_SameOriginRedirects)
