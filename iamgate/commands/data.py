"""`iamgate data update`: AWS's per-action support data, fetched live from the service reference.

Reads the index, then one file per service (a few at a time, each retried with backoff), and writes
the derived table (`action_support.json.gz`, see iamgate.reference.support) atomically into the user cache or
`--out DIR`. A failed or partial download writes nothing: the previous table stays as it was, and
the command exits 2. `iamgate data show` says which table `check` would use.
"""
from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from .. import __version__
from ..reference import support
from . import COMMANDS, Command, UsageError

ENV_ENDPOINT = "IAMGATE_SERVICE_REFERENCE_URL"
RETRY_STATUSES = {429, 500, 502, 503, 504}
WORKERS = 8
MAX_BYTES = 32 * 1024 * 1024  # the largest service file is ~2 MiB


class FetchError(Exception):
    """The service reference could not be read completely."""


class Progress:
    """`n of total` on stderr: one line rewritten in place on a terminal, a line per tenth in a CI log."""

    def __init__(self, stream=None, label: str = "service reference"):
        self.stream = stream or sys.stderr
        self.label = label
        self.tty = getattr(self.stream, "isatty", lambda: False)()
        self.total = 0
        self.shown = -1

    def start(self, total: int) -> None:
        self.total = total
        self.update(0)

    def update(self, done: int) -> None:
        tenth = done * 10 // self.total if self.total else 10
        if self.tty:
            self.stream.write(f"\r{self.label}: {done} of {self.total} service files")
            if done == self.total:
                self.stream.write("\n")
        elif tenth != self.shown or done == self.total:
            self.stream.write(f"{self.label}: {done} of {self.total} service files\n")
        self.shown = tenth
        self.stream.flush()


class Fetcher:
    """GET JSON with retries: network errors, timeouts, 429 and 5xx, honouring `Retry-After`."""

    def __init__(self, endpoint: str, *, attempts: int = 5, timeout: float = 30.0, first_delay: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep):
        self.endpoint = endpoint if endpoint.endswith("/") else endpoint + "/"
        self.attempts, self.timeout, self.first_delay, self.sleep = max(1, attempts), timeout, first_delay, sleep
        origin = urllib.parse.urlsplit(self.endpoint)
        if origin.scheme not in ("http", "https") or not origin.netloc:
            raise FetchError(f"{endpoint}: not an http(s) URL")
        self.origin = (origin.scheme, origin.netloc)

    def url(self, ref: str) -> str:
        """A URL from the index, which must stay on the endpoint's own origin."""
        url = urllib.parse.urljoin(self.endpoint, ref)
        parts = urllib.parse.urlsplit(url)
        if (parts.scheme, parts.netloc) != self.origin:
            raise FetchError(f"the index points outside {self.endpoint}: {url}")
        return url

    def get_json(self, url: str):
        delay = self.first_delay
        for attempt in range(1, self.attempts + 1):
            wait = delay
            try:
                req = urllib.request.Request(url, headers={"User-Agent": f"iamgate/{__version__}",
                                                           "Accept": "application/json"})
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - http(s) only
                    body = resp.read(MAX_BYTES + 1)
                if len(body) > MAX_BYTES:
                    raise FetchError(f"{url}: larger than {MAX_BYTES // 1048576} MiB")
                return json.loads(body)
            except urllib.error.HTTPError as e:
                if e.code not in RETRY_STATUSES:
                    raise FetchError(f"{url}: HTTP {e.code} {e.reason}") from None
                problem = f"HTTP {e.code} {e.reason}"
                after = e.headers.get("Retry-After", "") if e.headers else ""
                if after.strip().isdigit():
                    wait = min(float(after), 60.0)
            except (urllib.error.URLError, http.client.HTTPException, OSError) as e:  # incl. timeouts, cut bodies
                problem = str(getattr(e, "reason", None) or e) or type(e).__name__
            except ValueError as e:  # a truncated or garbled body: read it again
                problem = f"not JSON ({e})"
            if attempt == self.attempts:
                tries = f" (after {self.attempts} attempts)" if self.attempts > 1 else ""
                raise FetchError(f"{url}: {problem}{tries}")
            self.sleep(wait)
            delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")

    def index(self) -> list[tuple[str, str]]:
        data = self.get_json(self.endpoint)
        if not isinstance(data, list) or not data:
            raise FetchError(f"{self.endpoint}: the index is not a non-empty list of services")
        out = []
        for entry in data:
            if not isinstance(entry, dict) or not isinstance(entry.get("service"), str) \
                    or not isinstance(entry.get("url"), str):
                raise FetchError(f"{self.endpoint}: malformed index entry {entry!r:.80}")
            out.append((entry["service"], self.url(entry["url"])))
        return out

    def service(self, prefix: str, url: str) -> dict:
        doc = self.get_json(url)
        if not isinstance(doc, dict) or not isinstance(doc.get("Actions"), list):
            raise FetchError(f"{url}: not a service reference file (no Actions list)")
        return doc


def fetch_live(date: str | None = None, endpoint: str | None = None, progress: Progress | None = None,
               fetcher: Fetcher | None = None) -> dict:
    """The support table from the live service reference; raises FetchError unless every file was read."""
    endpoint = endpoint or os.environ.get(ENV_ENDPOINT) or support.ENDPOINT
    fetcher = fetcher or Fetcher(endpoint)
    date = date or dt.datetime.now(dt.timezone.utc).date().isoformat()
    services = fetcher.index()
    progress = progress or Progress()
    progress.start(len(services))
    docs: dict[str, dict] = {}
    with ThreadPoolExecutor(WORKERS) as pool:
        futures = {prefix: pool.submit(fetcher.service, prefix, url) for prefix, url in services}
        try:
            for prefix, future in futures.items():
                docs[prefix] = future.result()
                progress.update(len(docs))
        except BaseException:
            for f in futures.values():
                f.cancel()
            raise
    return support.table_from_services(docs, date, f"{fetcher.endpoint} as served on {date}")


def target_dir(out: str | None) -> Path:
    return Path(out) if out else support.cache_dir()


@COMMANDS.register
class Data(Command):
    name = "data"
    help = "AWS's per-action support data (which usage source sees which action): update it, or show the one in use"

    def configure(self, p) -> None:
        sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
        u = sub.add_parser("update", help="fetch the live service reference and write the support table",
                           description="Fetch AWS's service reference (the index, then one file per service) "
                                       "and write the derived table atomically.")
        u.add_argument("--out", metavar="DIR",
                       help=f"write {support.FILE_NAME} here (default: the user cache, {support.cache_dir()})")
        u.add_argument("--endpoint", metavar="URL",
                       help=f"service reference index (default: ${ENV_ENDPOINT} or {support.ENDPOINT})")
        u.add_argument("--attempts", type=int, default=5, metavar="N", help="tries per file (default 5)")
        u.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS", help="per request (default 30)")
        s = sub.add_parser("show", help="which support table `check` would use")
        s.add_argument("--data-dir", metavar="DIR", help="a folder holding a table (as `check --data-dir`)")

    def run(self, args) -> int:
        if args.action == "show":
            return self.show(args)
        out = target_dir(args.out) / support.FILE_NAME
        endpoint = args.endpoint or os.environ.get(ENV_ENDPOINT) or support.ENDPOINT
        try:
            table = fetch_live(fetcher=Fetcher(endpoint, attempts=args.attempts, timeout=args.timeout))
        except FetchError as e:
            raise UsageError(f"data update failed: {e}; the previous data is unchanged ({out})") from None
        try:
            support.write_table(out, table)
        except OSError as e:
            raise UsageError(f"data update: cannot write {out}: {e.strerror or e}; "
                             "the previous data is unchanged") from None
        data = support.parse(support.encode(table), str(out))
        print(f"iamgate: {out}: AWS support data of {data.date}, {len(data.listed):,} actions in "
              f"{len(data.services)} services ({len(data.generation):,} reported by Access Analyzer policy "
              f"generation, {len(data.last_accessed):,} tracked by IAM last accessed)", file=sys.stderr)
        return 0

    def show(self, args) -> int:
        try:
            data = support.load(args.data_dir)
        except support.SupportDataError as e:
            raise UsageError(str(e)) from None
        print(f"AWS support data of {data.date} ({data.origin}): {len(data.listed):,} actions in "
              f"{len(data.services)} services; source: {data.source}")
        return 0
