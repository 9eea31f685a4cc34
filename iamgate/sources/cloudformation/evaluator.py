"""CloudFormation template evaluation: Parameters, Mappings, Conditions and intrinsic functions.

Nothing is executed. What cannot be decided statically (`Fn::ImportValue`, a parameter with
no value, `AWS::AccountId`) becomes an `Unknown` carrying its reason and line.
"""
from __future__ import annotations

import json
import re

from ..budget import charge
from ..loaders import LDict, LList, line_of
from ..policy_document import Unknown

NO_VALUE = object()
PSEUDO_DEFAULTS = {"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
PSEUDO = {"AWS::AccountId", "AWS::NotificationARNs", "AWS::Region", "AWS::StackId", "AWS::StackName",
          "AWS::NoValue", "AWS::Partition", "AWS::URLSuffix"}
_SUB_VAR = re.compile(r"\$\{([^}]*)\}")
MAX_DEPTH = 200
_ARN_KINDS = {"AWS::IAM::Role": "role", "AWS::IAM::User": "user", "AWS::IAM::Group": "group"}


class UnionStr(str):
    """A string from one branch of an `Fn::If` whose condition is undecided: it may not be there."""


class UnionList(LList):
    """Both branches of an `Fn::If` whose condition is undecided (their union), or items of one."""


def _undecided(value, condition: str):
    """A branch of an undecided `Fn::If`: a Deny statement in it becomes conditional (it may not apply),
    strings are marked so a Deny's Action or an Allow's NotAction built from them is read the cautious way."""
    if isinstance(value, dict) and value.get("Effect") == "Deny":
        out = LDict(value, line=getattr(value, "line", None))
        out.key_lines.update(getattr(value, "key_lines", {}))
        cond = dict(value["Condition"]) if isinstance(value.get("Condition"), dict) else {}
        cond.setdefault("Unresolved", {})["iamgate:condition"] = f"condition {condition} is undecided"
        out["Condition"] = cond
        return out
    if type(value) is str:
        return UnionStr(value)
    if isinstance(value, dict) and not isinstance(value, UnionDict):
        out = UnionDict(value, line=getattr(value, "line", None))
        out.key_lines.update(getattr(value, "key_lines", {}))
        return out
    if isinstance(value, list):
        return UnionList([_undecided(v, condition) for v in value], line=getattr(value, "line", None))
    return value


class UnionDict(LDict):
    """A mapping from one branch of an undecided `Fn::If`: it may not be there (an Allow's Condition built
    from it may be absent, so the Allow is read without it)."""


class ResourceRef(str):
    """A string produced by `Ref`/`Fn::GetAtt` on a resource of the same template."""
    logical_id: str
    attribute: str | None

    def __new__(cls, text: str, logical_id: str, attribute: str | None = None):
        obj = super().__new__(cls, text)
        obj.logical_id = logical_id
        obj.attribute = attribute
        return obj


def is_intrinsic(node) -> bool:
    return isinstance(node, dict) and len(node) == 1 and (
        next(iter(node)) in ("Ref", "Condition") or str(next(iter(node))).startswith("Fn::"))


class Template:
    def __init__(self, doc: dict, parameters: dict | None = None, name_of=None):
        self.doc = doc
        self.overrides = dict(parameters or {})
        self.params = doc.get("Parameters") if isinstance(doc.get("Parameters"), dict) else {}
        self.mappings = doc.get("Mappings") if isinstance(doc.get("Mappings"), dict) else {}
        self.conditions = doc.get("Conditions") if isinstance(doc.get("Conditions"), dict) else {}
        self.resources = doc.get("Resources") if isinstance(doc.get("Resources"), dict) else {}
        self.loop_problems: list[Unknown] = []
        if any(str(k).startswith("Fn::ForEach::") for k in self.resources):
            self.resources = self._expand_foreach(self.resources, 0)
        self._cond_cache: dict[str, bool | None] = {}
        self._cond_stack: set[str] = set()
        self.union_notes: list[Unknown] = []  # each undecided Fn::If read as the union of its branches
        self._noted: set[str] = set()
        # name_of(logical_id, attribute) -> text for Ref/GetAtt of a resource (e.g. a role's name)
        self.name_of = name_of or (lambda lid, attr: None)

    # -- Fn::ForEach (AWS::LanguageExtensions) ----------------------------------
    def _expand_foreach(self, block: dict, depth: int) -> dict:
        out = LDict(line=getattr(block, "line", None))
        key_lines = getattr(block, "key_lines", {})
        for key, value in block.items():
            if not str(key).startswith("Fn::ForEach::"):
                out[key] = value
                if key in key_lines:
                    out.key_lines[key] = key_lines[key]
                continue
            line = getattr(block, "key_lines", {}).get(key)
            if not (isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)
                    and isinstance(value[2], dict)):
                self.loop_problems.append(Unknown(f"{key} needs [identifier, collection, template]", line=line))
                continue
            ident, collection = value[0], self.resolve(value[1])
            if not isinstance(collection, list) or _has_unknown(collection):
                self.loop_problems.append(Unknown(f"{key}: the collection is not known statically", line=line))
                continue
            # each item copies the loop's template: charged by the values that copy holds
            charge(None, len(collection) * _size(value[2]), f"{key} over {len(collection)} items", line)
            for item in collection:
                expanded = _substitute_loop(value[2], ident, str(item))
                if depth < 5 and any(str(k).startswith("Fn::ForEach::") for k in expanded):
                    expanded = self._expand_foreach(expanded, depth + 1)
                out.update(expanded)
                out.key_lines.update(getattr(expanded, "key_lines", {}))
        return out

    # -- conditions ------------------------------------------------------------
    def condition(self, name: str) -> bool | None:
        """True/False, or None when it depends on something unknown."""
        if name in self._cond_cache:
            return self._cond_cache[name]
        if name not in self.conditions or name in self._cond_stack:
            return None
        self._cond_stack.add(name)
        try:
            value = self._eval_condition(self.conditions[name], 0)
        finally:
            self._cond_stack.discard(name)
        self._cond_cache[name] = value
        return value

    def _eval_condition(self, node, depth) -> bool | None:
        if depth > MAX_DEPTH:
            return None
        if isinstance(node, bool):
            return node
        if isinstance(node, str) and node.lower() in ("true", "false"):
            return node.lower() == "true"
        if not isinstance(node, dict) or len(node) != 1:
            return None
        (fn, args), = node.items()
        if fn == "Condition":
            return self.condition(str(args))
        if fn == "Fn::Equals" and isinstance(args, list) and len(args) == 2:
            a, b = (self.resolve(x, depth + 1) for x in args)
            if _has_unknown(a) or _has_unknown(b):
                return None
            return _norm(a) == _norm(b)
        if fn == "Fn::Not" and isinstance(args, list) and len(args) == 1:
            v = self._eval_condition(args[0], depth + 1)
            return None if v is None else not v
        if fn in ("Fn::And", "Fn::Or") and isinstance(args, list):
            values = [self._eval_condition(a, depth + 1) for a in args]
            if fn == "Fn::And":
                return False if False in values else (None if None in values else True)
            return True if True in values else (None if None in values else False)
        return None

    # -- values ----------------------------------------------------------------
    def parameter(self, name: str, line=None):
        if name in self.overrides:
            value = self.overrides[name]
        else:
            spec = self.params.get(name)
            if not isinstance(spec, dict) or "Default" not in spec:
                return Unknown(f"parameter {name} has no value (give --param {name}=...)", line=line)
            if self._cond_stack:  # a default is a deploy-time choice, not a fact: it decides no Condition
                return Unknown(f"parameter {name} has no pinned value (its default {spec['Default']!r} can be "
                               f"overridden at deploy; give --param {name}=... to pin it)", line=line)
            value = spec["Default"]
        spec = self.params.get(name) if isinstance(self.params.get(name), dict) else {}
        ptype = str(spec.get("Type", ""))
        if isinstance(value, str) and (ptype == "CommaDelimitedList" or ptype.startswith("List<")):
            return [v.strip() for v in value.split(",")]
        if not isinstance(value, (str, list)):
            value = json.dumps(value) if isinstance(value, (dict,)) else str(value)
        return value

    def ref(self, name: str, line=None):
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.overrides:
            return self.parameter(name, line)
        if name in PSEUDO:
            if name in PSEUDO_DEFAULTS:
                return PSEUDO_DEFAULTS[name]
            return Unknown(name, line=line)
        if name in self.params:
            return self.parameter(name, line)
        if name in self.resources:
            text = self.name_of(name, None)
            return ResourceRef(text if text is not None else "${" + name + "}", name)
        return Unknown(f"Ref to undefined {name}", line=line)

    def resolve(self, node, depth: int = 0):
        """Evaluate intrinsic functions everywhere in `node`; mappings keep their lines."""
        if depth > MAX_DEPTH:
            return Unknown("nested too deeply", line=line_of(node))
        if isinstance(node, dict):
            if is_intrinsic(node):
                return self._intrinsic(node, depth)
            out = LDict(line=getattr(node, "line", None))
            key_lines = getattr(node, "key_lines", {})
            for k, v in node.items():
                rv = self.resolve(v, depth + 1)
                if rv is not NO_VALUE:
                    out[k] = rv
                    if k in key_lines:
                        out.key_lines[k] = key_lines[k]
            return out
        if isinstance(node, list):
            out_list = LList(line=getattr(node, "line", None))
            for v in node:
                either = self._if_items(v, depth + 1) if is_intrinsic(v) and "Fn::If" in v else None
                if either is not None:  # an undecided Fn::If item: the items of either branch
                    out_list.extend(either)
                    continue
                rv = self.resolve(v, depth + 1)
                if rv is not NO_VALUE:
                    out_list.append(rv)
            return out_list
        return node

    def _intrinsic(self, node, depth):
        (fn, args), = node.items()
        line = line_of(node)
        r = lambda x: self.resolve(x, depth + 1)  # noqa: E731
        if fn == "Ref":
            return self.ref(str(r(args)), line) if not isinstance(args, dict) else Unknown("Ref to a computed name", line=line)
        if fn == "Condition":
            v = self.condition(str(args))
            return Unknown(f"condition {args} cannot be evaluated", line=line) if v is None else v
        if fn == "Fn::If":
            if not (isinstance(args, list) and len(args) == 3):
                return Unknown("Fn::If needs [condition, then, else]", line=line)
            v = self.condition(str(args[0]))
            if v is None:
                return self._union(str(args[0]), r(args[1]), r(args[2]), line)
            return r(args[1] if v else args[2])
        if fn == "Fn::Sub":
            return self._sub(args, depth, line)
        if fn == "Fn::Join":
            if not (isinstance(args, list) and len(args) == 2):
                return Unknown("Fn::Join needs [delimiter, list]", line=line)
            delim, items = r(args[0]), r(args[1])
            if isinstance(items, Unknown):
                return items
            if not isinstance(items, list) or not isinstance(delim, str):
                return Unknown("Fn::Join needs a string delimiter and a list", line=line)
            return _concat([x for part in _interleave(items, delim) for x in [part]], line)
        if fn == "Fn::Select":
            if not (isinstance(args, list) and len(args) == 2):
                return Unknown("Fn::Select needs [index, list]", line=line)
            idx, items = r(args[0]), r(args[1])
            if isinstance(items, Unknown) or isinstance(idx, Unknown):
                return Unknown("Fn::Select over an unknown value", line=line)
            try:
                return items[int(idx)]
            except (ValueError, IndexError, TypeError, KeyError):
                return Unknown(f"Fn::Select index {idx} is out of range", line=line)
        if fn == "Fn::Split":
            if not (isinstance(args, list) and len(args) == 2):
                return Unknown("Fn::Split needs [delimiter, string]", line=line)
            delim, text = r(args[0]), r(args[1])
            if isinstance(text, Unknown) or not isinstance(text, str) or not isinstance(delim, str) or not delim:
                return Unknown("Fn::Split of an unknown value", line=line)
            return LList(self._split(text, delim), line=line)
        if fn == "Fn::FindInMap":
            return self._find_in_map(args, depth, line)
        if fn == "Fn::GetAtt":
            parts = args.split(".", 1) if isinstance(args, str) else args
            if not (isinstance(parts, list) and len(parts) == 2):
                return Unknown("Fn::GetAtt needs [resource, attribute]", line=line)
            lid, attr = str(r(parts[0])), r(parts[1])
            if lid in self.resources:
                text = self.name_of(lid, str(attr))
                return ResourceRef(text if text is not None else "${" + f"{lid}.{attr}" + "}", lid, str(attr))
            return Unknown(f"Fn::GetAtt of undefined resource {lid}", line=line)
        if fn == "Fn::ImportValue":
            v = r(args)
            return Unknown(f"Fn::ImportValue {v}", text="${ImportValue:" + str(v) + "}", line=line)
        if fn == "Fn::GetAZs":
            return Unknown("Fn::GetAZs depends on the deploy region", line=line)
        if fn == "Fn::Base64":
            return r(args)
        if fn == "Fn::Cidr":
            return Unknown("Fn::Cidr is computed at deploy time", line=line)
        if fn == "Fn::Transform":
            return Unknown("Fn::Transform runs a macro at deploy time", line=line)
        if fn == "Fn::Length":
            v = r(args)
            return len(v) if isinstance(v, list) else Unknown("Fn::Length of an unknown list", line=line)
        if fn == "Fn::ToJsonString":
            v = r(args)
            return Unknown("Fn::ToJsonString of an unknown value", line=line) if _has_unknown(v) else json.dumps(v)
        if fn in ("Fn::Equals", "Fn::And", "Fn::Or", "Fn::Not"):
            v = self._eval_condition(node, depth + 1)
            return Unknown(f"{fn} cannot be evaluated", line=line) if v is None else v
        return Unknown(f"unknown intrinsic function {fn}", line=line)

    def _if_items(self, node, depth):
        args = node["Fn::If"]
        if not (isinstance(args, list) and len(args) == 3) or self.condition(str(args[0])) is not None:
            return None
        self._note_union(str(args[0]), line_of(node))
        branches = (self.resolve(args[1], depth + 1), self.resolve(args[2], depth + 1))
        return [_undecided(b, str(args[0])) for b in branches if b is not NO_VALUE]

    def _note_union(self, name: str, line) -> None:
        if name not in self._noted:
            self._noted.add(name)
            self.union_notes.append(Unknown(f"condition {name} cannot be decided statically ({self.why(name)}); "
                                            "both branches of its Fn::If are read, as the union of what they grant",
                                            line=line))

    def _union(self, name: str, a, b, line):
        """An `Fn::If` whose condition is undecided (a parameter with no pinned value, an unknown): it grants
        what either branch grants. Lists join; a single value with no other branch stays; two different
        single values cannot both be there, so they stay unknown."""
        self._note_union(name, line)
        if a is NO_VALUE or b is NO_VALUE:
            return NO_VALUE if a is b else _undecided(b if a is NO_VALUE else a, name)
        if isinstance(a, list) and isinstance(b, list):
            return UnionList([*_undecided(a, name), *_undecided(b, name)], line=line)
        if a == b and not isinstance(a, Unknown):
            return a
        return Unknown(f"condition {name} cannot be decided statically ({self.why(name)}), and its branches differ",
                       line=line)

    def why(self, name: str) -> str:
        """What leaves a condition undecided, for the note: the parameters it reads, else an unknown."""
        found: list[str] = []

        def walk(node, depth=0):
            if depth > 20:
                return
            if isinstance(node, dict):
                for k, v in node.items():
                    if k == "Ref" and isinstance(v, str) and v in self.params and v not in self.overrides:
                        found.append(v)
                    elif k == "Condition" and isinstance(v, str) and v in self.conditions and v != name:
                        walk(self.conditions[v], depth + 1)
                    else:
                        walk(v, depth + 1)
            elif isinstance(node, list):
                for v in node:
                    walk(v, depth + 1)
        walk(self.conditions.get(name))
        names = list(dict.fromkeys(found))
        return (f"parameter{'s' * (len(names) > 1)} {', '.join(names)} ha{'ve' if len(names) > 1 else 's'} no "
                "pinned value; give --param to pin" if names else "it depends on a value known only at deploy")

    def _split(self, text: str, delim: str) -> list:
        """Fn::Split. Over a reference to a principal whose name CloudFormation generates, the part that is
        the name stays that reference: `Select 1 (Split "/" (Select 5 (Split ":" Role.Arn)))`, how CDK names
        a role it imported by ARN, is the role's name."""
        if not isinstance(text, ResourceRef):
            return text.split(delim)
        lid = text.logical_id
        if text.attribute == "Arn" and text == "${" + f"{lid}.Arn" + "}":
            text = ResourceRef(self._generated_arn(lid) or text, lid, "Arn")
        name = "${" + lid + "}"
        return [ResourceRef(part, lid, None if part == name else text.attribute) if name in part else part
                for part in _split_outside_placeholders(text, delim)]

    def _generated_arn(self, lid: str) -> str | None:
        res = self.resources.get(lid)
        kind = _ARN_KINDS.get(res.get("Type")) if isinstance(res, dict) else None
        props = res.get("Properties") if kind and isinstance(res.get("Properties"), dict) else {}
        path = props.get("Path", "/")
        if kind is None or not isinstance(path, str):
            return None
        return f"arn:aws:iam::${{AWS::AccountId}}:{kind}{path}${{{lid}}}"

    def _sub(self, args, depth, line):
        if isinstance(args, str):
            template, variables = args, {}
        elif isinstance(args, list) and len(args) == 2 and isinstance(args[0], str) and isinstance(args[1], dict):
            template, variables = args[0], {k: self.resolve(v, depth + 1) for k, v in args[1].items()}
        else:
            return Unknown("Fn::Sub needs a string or [string, variables]", line=line)
        parts: list = []
        pos = 0
        for m in _SUB_VAR.finditer(template):
            parts.append(template[pos:m.start()])
            pos = m.end()
            name = m.group(1).strip()
            if name.startswith("!"):
                parts.append("${" + name[1:] + "}")
                continue
            if name in variables:
                value = variables[name]
            elif "." in name and name.split(".", 1)[0] in self.resources:
                lid, attr = name.split(".", 1)
                text = self.name_of(lid, attr)
                value = ResourceRef(text if text is not None else "${" + name + "}", lid, attr)
            else:
                value = self.ref(name, line)
            if isinstance(value, list):
                value = Unknown(f"Fn::Sub variable {name} is a list", line=line)
            parts.append(value)
        parts.append(template[pos:])
        return _concat(parts, line)

    def _find_in_map(self, args, depth, line):
        if not (isinstance(args, list) and len(args) in (3, 4)):
            return Unknown("Fn::FindInMap needs [map, key, key]", line=line)
        keys = [self.resolve(a, depth + 1) for a in args[:3]]
        default = None
        if len(args) == 4 and isinstance(args[3], dict) and "DefaultValue" in args[3]:
            default = self.resolve(args[3]["DefaultValue"], depth + 1)
        if any(isinstance(k, Unknown) for k in keys):
            return default if default is not None else Unknown("Fn::FindInMap with an unknown key", line=line)
        try:
            return self.resolve(self.mappings[str(keys[0])][str(keys[1])][str(keys[2])], depth + 1)
        except (KeyError, TypeError):
            if default is not None:
                return default
            return Unknown(f"Fn::FindInMap {'/'.join(map(str, keys))} is not in Mappings", line=line)


def _split_outside_placeholders(text: str, delim: str) -> list[str]:
    """`text.split(delim)`, where a `${...}` placeholder (`${AWS::AccountId}`) is never split."""
    parts, start, i = [], 0, 0
    while i < len(text):
        if text.startswith("${", i) and text.find("}", i) != -1:
            i = text.find("}", i) + 1
        elif text.startswith(delim, i):
            parts.append(text[start:i])
            i = start = i + len(delim)
        else:
            i += 1
    return [*parts, text[start:]]


def _substitute_loop(node, ident: str, item: str):
    """Fn::ForEach: `${Id}`/`&{Id}` in keys and strings, and `Ref: Id`, take the item's value."""
    alnum = re.sub(r"[^A-Za-z0-9]", "", item)

    def text(s: str) -> str:
        return s.replace("${" + ident + "}", item).replace("&{" + ident + "}", alnum)

    if isinstance(node, dict):
        if len(node) == 1 and node.get("Ref") == ident:
            return item
        out = LDict(line=getattr(node, "line", None))
        for k, v in node.items():
            nk = text(k) if isinstance(k, str) else k
            out[nk] = _substitute_loop(v, ident, item)
            if k in getattr(node, "key_lines", {}):
                out.key_lines[nk] = node.key_lines[k]
        return out
    if isinstance(node, list):
        return LList([_substitute_loop(v, ident, item) for v in node], line=getattr(node, "line", None))
    if isinstance(node, str):
        return text(node)
    return node


def _size(node, limit: int = 1_000_000) -> int:
    """How many values a template holds (mappings, lists and scalars), counted up to `limit`."""
    n, stack = 0, [node]
    while stack and n < limit:
        v = stack.pop()
        n += 1
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return n


def _interleave(items, delim):
    out = []
    for i, item in enumerate(items):
        if i:
            out.append(delim)
        out.append(item)
    return out


def _concat(parts, line):
    unknown = [p for p in parts if isinstance(p, Unknown)]
    bad = [p for p in parts if not isinstance(p, (str, int, float, Unknown)) or isinstance(p, bool)]
    if bad:
        return Unknown("a string function got a non-string value", line=line)
    text = "".join(str(p) for p in parts)
    if unknown:
        return Unknown(unknown[0].reason, text=text, line=line)
    return text


def _norm(v):
    if isinstance(v, bool):
        return str(v).lower()
    return v if isinstance(v, (list, dict)) else str(v)


def _has_unknown(v) -> bool:
    if isinstance(v, Unknown):
        return True
    if isinstance(v, dict):
        return any(_has_unknown(x) for x in v.values())
    if isinstance(v, list):
        return any(_has_unknown(x) for x in v)
    return False
