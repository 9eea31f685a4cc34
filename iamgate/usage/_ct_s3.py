"""CloudTrail delivery files in S3: paginated listing with date-prefix pruning, in-memory downloads,
at most `S3_IN_FLIGHT` objects downloading or downloaded-but-not-yet-parsed at any time."""
from __future__ import annotations

import os
import re
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Callable, Iterable, Iterator, TypeVar

T, R = TypeVar("T"), TypeVar("R")
S3_IN_FLIGHT = 16  # objects held at once (downloading or waiting to be parsed); IAMGATE_S3_IN_FLIGHT overrides

_DATE_PART = re.compile(r"/CloudTrail/[^/]+/(\d{4})/(?:(\d{2})/(?:(\d{2})/)?)?$")


def parse_url(url: str) -> tuple[str, str]:
    rest = url[len("s3://"):]
    bucket, _, prefix = rest.partition("/")
    return bucket, prefix


def in_flight() -> int:
    try:
        return max(1, int(os.environ.get("IAMGATE_S3_IN_FLIGHT", "") or S3_IN_FLIGHT))
    except ValueError:
        return S3_IN_FLIGHT


def bounded_map(fn: Callable[[T], R], items: Iterable[T], limit: int | None = None) -> Iterator[R]:
    """`fn` over `items` in `limit` threads, results in order; at most `limit` items are submitted and
    not yet consumed, so at most `limit` downloaded objects are in memory however slow the consumer."""
    limit = limit or in_flight()
    queue: deque = deque()  # the bounded queue: futures submitted, results not yet handed out
    with ThreadPoolExecutor(limit, thread_name_prefix="s3-download") as pool:
        try:
            for item in items:
                if len(queue) >= limit:
                    yield queue.popleft().result()
                queue.append(pool.submit(fn, item))
            while queue:
                yield queue.popleft().result()
        finally:
            for f in queue:  # the consumer stopped early: what has not started never starts
                f.cancel()


@lru_cache(maxsize=1)
def client():
    import boto3

    from .aws_clients import client_config
    return boto3.client("s3", config=client_config(max_pool_connections=in_flight()))  # a connection per download


def _prefix_in_window(prefix: str, lo: tuple | None, hi: tuple | None) -> bool:
    """Prune `.../CloudTrail/<region>/YYYY/[MM/[DD/]]` prefixes outside the (y, m, d) window."""
    if "CloudTrail-Digest/" in prefix:
        return False
    m = _DATE_PART.search(prefix)
    if not m:
        return True
    parts = tuple(p for p in m.groups() if p)
    return (lo is None or parts >= lo[:len(parts)]) and (hi is None or parts <= hi[:len(parts)])


def list_keys(url: str, lo: tuple | None = None, hi: tuple | None = None, s3=None, keep=None):
    """Keys under s3://bucket/prefix. With a window, walks by `/` and skips days outside it; `keep(prefix)`
    False skips a prefix too (the days an earlier run read, `_ct_state`)."""
    s3 = s3 or client()
    bucket, prefix = parse_url(url)
    paginator = s3.get_paginator("list_objects_v2")
    if lo is None and hi is None and keep is None:
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", ()):
                yield obj["Key"], obj.get("Size", 0)
        return
    stack = [prefix]
    while stack:
        current = stack.pop()
        for page in paginator.paginate(Bucket=bucket, Prefix=current, Delimiter="/"):
            for obj in page.get("Contents", ()):
                yield obj["Key"], obj.get("Size", 0)
            for cp in page.get("CommonPrefixes", ()):
                if _prefix_in_window(cp["Prefix"], lo, hi) and (keep is None or keep(cp["Prefix"])):
                    stack.append(cp["Prefix"])


def fetch(bucket: str, key: str, s3=None) -> bytes:
    """The object's bytes, streamed into memory: nothing lands on disk."""
    body = (s3 or client()).get_object(Bucket=bucket, Key=key)["Body"]
    try:
        return b"".join(body.iter_chunks(1 << 20))
    finally:
        body.close()
