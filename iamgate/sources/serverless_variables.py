"""Serverless Framework variables: `${self:…}`, `${opt:…, default}`, `${sls:stage}`, `${file(…):…}`.

Only what the configuration fixes is resolved. Deploy-time sources (`env`, `ssm`, `cf`, `s3`,
`param`, JavaScript files, ...) become `Unknown` with the reason; nothing is executed.
"""
from __future__ import annotations

import re
from pathlib import Path

from .loaders import LDict, LList, LoadError, load_document
from .policy_document import Unknown

DEFAULT_STAGE, DEFAULT_REGION = "dev", "us-east-1"  # as Serverless itself defaults them
_INNERMOST = re.compile(r"\$\{([^${}]*)\}")
_CFN_VAR = re.compile(r"\$\{(AWS::[A-Za-z]+|stageVariables\.[^}]*)\}")  # left for CloudFormation / API Gateway
_SOURCE = re.compile(r"^\s*([A-Za-z][\w-]*)(?:(\([^)]*\))(?::(.*))?|:(.*))$", re.S)
MAX_DEPTH = 40


class Variables:
    def __init__(self, doc: dict, base_dir: Path, roots: list[Path], options: dict | None = None):
        self.doc, self.base_dir, self.roots = doc, base_dir, roots
        self.options = {k.lower(): v for k, v in (options or {}).items() if isinstance(v, str)}
        self._active: set[str] = set()
        self._files: dict[Path, object] = {}

    # -- public ------------------------------------------------------------------
    def resolve(self, node, depth: int = 0):
        """`node` with every variable resolved; mappings and lists keep their lines."""
        if depth > MAX_DEPTH:
            return Unknown("variables nested too deeply")
        if isinstance(node, dict):
            out = LDict(line=getattr(node, "line", None))
            for k, v in node.items():
                out[k] = self.resolve(v, depth + 1)
                if k in getattr(node, "key_lines", {}):
                    out.key_lines[k] = node.key_lines[k]
            return out
        if isinstance(node, list):
            return LList((self.resolve(v, depth + 1) for v in node), line=getattr(node, "line", None))
        if isinstance(node, str) and "${" in node:
            return self.string(node, depth)
        return node

    @property
    def stage(self):
        return self.options.get("stage") or self._provider("stage", DEFAULT_STAGE)

    @property
    def region(self):
        return self.options.get("region") or self._provider("region", DEFAULT_REGION)

    # -- strings -------------------------------------------------------------------
    def string(self, text: str, depth: int):
        kept: list[str] = []  # text already resolved (or left to CloudFormation): never parsed again

        def keep(value: str) -> str:
            kept.append(value)
            return f"\x00{len(kept) - 1}\x01"

        def restore(value: str) -> str:
            return re.sub(r"\x00(\d+)\x01", lambda m: kept[int(m.group(1))], value)

        text = _CFN_VAR.sub(lambda m: keep(m.group(0)), text)
        unknown: Unknown | None = None
        for _ in range(200):
            m = _INNERMOST.search(text)
            if m is None:
                break
            body = restore(m.group(1))
            value = self.expression(body, depth + 1)
            if m.start() == 0 and m.end() == len(text) and value is not None and not isinstance(value, (str, Unknown)):
                return self.resolve(value, depth + 1) if isinstance(value, (dict, list)) else value
            if isinstance(value, Unknown):
                unknown = unknown or value
                value = value.text
            elif value is None or isinstance(value, (dict, list)):
                what = "has no value" if value is None else "is not a string"
                unknown = unknown or Unknown(f"${{{body}}} {what}")
                value = "${" + body + "}"
            text = text[:m.start()] + keep(str(value)) + text[m.end():]
        text = restore(text)
        if unknown is not None:
            return Unknown(unknown.reason, text=text)
        return text

    def expression(self, expr: str, depth: int):
        """One `${...}` body: a source and its fallbacks, the first that has a value wins."""
        for part in _split_fallbacks(expr):
            value = self.term(part.strip(), depth)
            if value is not None:
                return value
        return None

    def term(self, term: str, depth: int):
        if not term:
            return None
        if term[0] in "'\"" and term[-1:] == term[0] and len(term) > 1:
            return term[1:-1]
        if re.fullmatch(r"-?\d+(\.\d+)?", term):
            return term
        m = _SOURCE.match(term)
        if m is None:
            return term  # a bare word in a fallback position
        source, arg, address = m.group(1), m.group(2), (m.group(3) or m.group(4) or "").strip()
        if source == "self":
            return self.self_ref(address, depth)
        if source == "opt":
            return self.options.get(address.lower())
        if source == "sls":
            if address == "stage":
                return self.stage
            return Unknown(f"sls:{address} is known only at deploy", text="${sls:" + address + "}")
        if source == "aws":
            if address == "region":
                return self.region
            if address == "accountId":
                return Unknown("aws:accountId", text="${AWS::AccountId}")
            return Unknown(f"aws:{address} is known only at deploy")
        if source == "file" and arg:
            return self.file_ref(arg[1:-1].strip().strip("'\""), address, depth)
        return Unknown(f"${{{source}:{address}}} is read at deploy time ({source})", text="${" + term + "}")

    # -- sources -------------------------------------------------------------------
    def self_ref(self, address: str, depth: int):
        if address in ("provider.stage", "provider.region"):
            return self.stage if address.endswith("stage") else self.region
        if address in self._active:
            return Unknown(f"self:{address} refers to itself", text="${self:" + address + "}")
        found, value = _walk(self.doc, address)
        if not found:
            return None
        self._active.add(address)
        try:
            return self.resolve(value, depth + 1)
        finally:
            self._active.discard(address)

    def _provider(self, key: str, default: str):
        provider = self.doc.get("provider") if isinstance(self.doc, dict) else None
        value = provider.get(key) if isinstance(provider, dict) else None
        if value is None:
            return default
        address = f"provider.{key}"
        if address in self._active:
            return Unknown(f"{address} refers to itself")
        self._active.add(address)
        try:
            resolved = self.resolve(value)
        finally:
            self._active.discard(address)
        return resolved if isinstance(resolved, (str, Unknown)) else str(resolved)

    def file_ref(self, name: str, address: str, depth: int):
        name = self.resolve(name, depth + 1)
        if not isinstance(name, str):
            return Unknown(f"file({name}) has an unknown path")
        path = (self.base_dir / name).resolve()
        if not any(path == r or r in path.parents for r in self.roots):
            return Unknown(f"file({name}) is outside the scanned repository; not read")
        if path.suffix.lower() not in (".yml", ".yaml", ".json"):
            return Unknown(f"file({name}) is code, which iamgate never runs")
        if path not in self._files:
            try:
                self._files[path] = load_document(path.read_text(encoding="utf-8-sig"), path.suffix.lower())
            except (OSError, UnicodeDecodeError):
                self._files[path] = LoadError(f"file({name}) cannot be read")
            except LoadError as e:
                self._files[path] = e
        doc = self._files[path]
        if isinstance(doc, LoadError):
            return Unknown(f"file({name}): {doc.message}")
        found, value = _walk(doc, address) if address else (True, doc)
        if not found:
            return None
        # `self:` in an included file is the service's configuration; its lines are another file's, so dropped
        return self.resolve(_unlined(value), depth + 1)


def _unlined(node):
    if isinstance(node, dict):
        return {k: _unlined(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_unlined(v) for v in node]
    return node


def _walk(doc, address: str):
    node = doc
    for part in [p for p in address.split(".") if p] if address else []:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def _split_fallbacks(expr: str) -> list[str]:
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(expr):
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(expr[start:i])
            start = i + 1
    parts.append(expr[start:])
    return parts
