"""Terraform AWS IAM resources -> principals. Shared by the HCL and the plan JSON sources.

Both sources hand over the same thing: resource instances with their attribute values
(nested blocks as lists of mappings), so HCL and plan extraction of one configuration agree.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ...model import Location, Policy
from ..collector import Collector, aws_managed_in_any_partition, name_pattern
from ..loaders import LDict, LList, LoadError, line_of
from ..policy_document import Unknown
from .sso import SSO_TYPES
from .sso import build as build_permission_sets
from .strings import decode_json
from .values import Encoded, SDict, Text, origin_of

PRINCIPAL_TYPES = {"aws_iam_role": "role", "aws_iam_user": "user", "aws_iam_group": "group"}
INLINE_POLICY_TYPES = {"aws_iam_role_policy": ("role", "role"), "aws_iam_user_policy": ("user", "user"),
                       "aws_iam_group_policy": ("group", "group")}
ATTACHMENT_TYPES = {"aws_iam_role_policy_attachment": ("role", "role"),
                    "aws_iam_user_policy_attachment": ("user", "user"),
                    "aws_iam_group_policy_attachment": ("group", "group")}
EXCLUSIVE_INLINE_TYPES = {"aws_iam_role_policies_exclusive": ("role", "role_name"),
                          "aws_iam_user_policies_exclusive": ("user", "user_name"),
                          "aws_iam_group_policies_exclusive": ("group", "group_name")}
EXCLUSIVE_ATTACHMENT_TYPES = {"aws_iam_role_policy_attachments_exclusive": ("role", "role_name"),
                              "aws_iam_user_policy_attachments_exclusive": ("user", "user_name"),
                              "aws_iam_group_policy_attachments_exclusive": ("group", "group_name")}
_KIND_TYPE = {v: k for k, v in PRINCIPAL_TYPES.items()}
IAM_TYPES = (set(PRINCIPAL_TYPES) | set(INLINE_POLICY_TYPES) | set(ATTACHMENT_TYPES) | set(EXCLUSIVE_INLINE_TYPES)
             | set(EXCLUSIVE_ATTACHMENT_TYPES) | {"aws_iam_policy", "aws_iam_policy_attachment",
                                                 "aws_iam_user_group_membership", "aws_iam_group_membership"}
             | SSO_TYPES)
LINK_TYPES = (set(INLINE_POLICY_TYPES) | set(ATTACHMENT_TYPES) | set(EXCLUSIVE_INLINE_TYPES)
              | set(EXCLUSIVE_ATTACHMENT_TYPES) | {"aws_iam_policy_attachment", "aws_iam_user_group_membership",
                                                   "aws_iam_group_membership"})
UNLINKED = "is linked to no principal and no note explains why"
_STATEMENT_KEYS = (("actions", "Action"), ("not_actions", "NotAction"), ("resources", "Resource"),
                   ("not_resources", "NotResource"))


@dataclass
class TfResource:
    """One resource instance: `values` holds its arguments, nested blocks as lists of mappings."""
    address: str  # module.a.aws_iam_role.x[0]
    mode: str  # managed | data
    type: str
    values: dict
    file: str
    line: int | None
    base: str = ""  # the address without its instance key
    key: object = None  # the count index or for_each key
    exprs: dict = field(default_factory=dict)  # argument -> its expression as written (HCL only)

    def __post_init__(self):
        self.base = self.base or self.address


def as_list(value) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def format_key(key) -> str:
    return f"[{key}]" if isinstance(key, int) else f'["{key}"]'


# -- aws_iam_policy_document -------------------------------------------------

def policy_document(values: dict, file: str, line: int | None):
    """The document an `aws_iam_policy_document` renders, merged with its source and override documents."""
    statements: list = []
    for src in as_list(values.get("source_policy_documents")) + as_list(values.get("source_json")):
        statements.extend(_document_statements(src, file, line))
    for st in as_list(values.get("statement")):
        _merge_statement(statements, _statement(st, file, line))
    for over in as_list(values.get("override_json")) + as_list(values.get("override_policy_documents")):
        for st in _document_statements(over, file, line):
            _merge_statement(statements, st)
    doc = LDict({"Version": values.get("version") or "2012-10-17"}, line=line)
    if isinstance(values.get("policy_id"), str) and values["policy_id"]:
        doc["Id"] = values["policy_id"]
    doc["Statement"] = LList(statements, line=line)
    return doc


def _document_statements(value, file, line) -> list:
    if value is None:
        return []
    if isinstance(value, Unknown) and not isinstance(value, Text):
        return [value]
    doc_file = getattr(value, "file", None) or file
    try:
        doc = decode_json(value, doc_file, line)
    except LoadError as e:
        return [Unknown(f"a source or override document is not JSON: {e.message}", line=line)]
    if isinstance(doc, Unknown):
        return [doc]
    raw = doc.get("Statement") if isinstance(doc, dict) else None
    out = []
    for st in as_list(raw):
        if isinstance(st, dict) and not isinstance(st, SDict):
            s = SDict(st, line=line_of(st, line), file=doc_file)
            st = s
        out.append(st)
    return out


def _merge_statement(statements: list, st) -> None:
    sid = st.get("Sid") if isinstance(st, dict) else None
    if isinstance(sid, str) and sid:
        for i, other in enumerate(statements):
            if isinstance(other, dict) and other.get("Sid") == sid:
                statements[i] = st
                return
    statements.append(st)


def _statement(st, file, line):
    if isinstance(st, Unknown) or not isinstance(st, dict):
        return st
    sline = line_of(st, line)
    out = SDict(line=sline, file=getattr(st, "file", None) or file)
    sid = st.get("sid")
    if sid:
        out["Sid"] = sid
    out["Effect"] = st.get("effect") or "Allow"
    for key, iam_key in _STATEMENT_KEYS:
        value = st.get(key)
        if value is None or (isinstance(value, list) and not value):
            continue
        out[iam_key] = value
    for key, iam_key in (("principals", "Principal"), ("not_principals", "NotPrincipal")):
        blocks = [b for b in as_list(st.get(key)) if isinstance(b, dict)]
        if blocks:
            out[iam_key] = {str(b.get("type")): b.get("identifiers") for b in blocks}
    conditions: dict = {}
    for c in as_list(st.get("condition")):
        if isinstance(c, Unknown):
            conditions.setdefault("Unknown", {})[c.text] = c.text
            continue
        if isinstance(c, dict):
            conditions.setdefault(str(c.get("test")), {})[str(c.get("variable"))] = c.get("values")
    if conditions:
        out["Condition"] = conditions
    return out


# -- principals ----------------------------------------------------------------

@dataclass
class _Attach:
    pid: str
    ref: object  # a policy ARN value (str, Ref, RefUnknown, Unknown)
    res: TfResource
    what: str = "policy_arn"  # the argument that holds it


@dataclass
class IamBuilder:
    """Builds principals from the resource instances of one Terraform root module."""
    out: Collector
    resources: list
    documents: dict = field(default_factory=dict)  # data.aws_iam_policy_document address -> document

    def __post_init__(self):
        self.principal_res: dict[str, TfResource] = {}
        self.inline: set[int] = set()  # ids of inline Policy objects
        self.policies = {r.address: r for r in self.resources if r.mode == "managed" and r.type == "aws_iam_policy"}
        self.linked: dict[str, set[str]] = {}  # linking resource address -> the principals it reached
        self.accounted: set[str] = set()  # linking resources that were linked, noted or reported

    def of_type(self, *types):
        return [r for r in self.resources if r.mode == "managed" and r.type in types]

    def run(self) -> None:
        for r in self.of_type(*PRINCIPAL_TYPES):
            self.principal(r)
        attachments = self.attachments()
        self.managed_policies(attachments)
        for r in self.of_type("aws_iam_role"):
            for i, block in enumerate(as_list(r.values.get("inline_policy"))):
                if isinstance(block, dict) and block.get("policy") is not None:
                    self.add_policy(r.address, block.get("name") or f"inline_policy[{i}]", block["policy"], r,
                                    line_of(block, r.line))
        for r in self.of_type(*INLINE_POLICY_TYPES):
            kind, key = INLINE_POLICY_TYPES[r.type]
            pid = self.target(r.values.get(key), kind, r, key)
            if pid is None:
                continue
            name = r.values.get("name") or r.values.get("name_prefix") or r.address
            self.add_policy(pid, str(name), r.values.get("policy"), r, r.line)
        for r in self.of_type(*EXCLUSIVE_INLINE_TYPES):
            self.exclusive_inline(r)
        self.group_memberships()
        build_permission_sets(self)
        for r in self.of_type(*LINK_TYPES):
            if r.address not in self.accounted:  # fail closed: a link nothing explains is still reported
                self.out.note(r.file, r.line, f"{r.address}: {UNLINKED}")

    def principal(self, r: TfResource) -> None:
        kind = PRINCIPAL_TYPES[r.type]
        name, prefix = r.values.get("name"), False
        if name is None and r.values.get("name_prefix") is not None:
            name, prefix = r.values.get("name_prefix"), True
        pattern = None
        if isinstance(name, Unknown):
            self.out.note(r.file, name.line or r.line, f"{r.address}: name cannot be resolved: {name.reason}",
                          r.address)
            name, pattern = None, name_pattern(name)
        path = r.values.get("path")
        arn = r.values.get("arn")
        self.out.principal(r.address, kind, name=str(name) if isinstance(name, str) else None, name_is_prefix=prefix,
                           path=path if isinstance(path, str) and not isinstance(path, Unknown) else "/",
                           arn=str(arn) if isinstance(arn, str) and arn.startswith("arn:") else None,
                           location=Location(r.file, r.line), name_pattern=pattern)
        self.principal_res[r.address] = r

    # linking ---------------------------------------------------------------
    def target(self, value, kind: str, r: TfResource, what: str) -> str | None:
        """The principal an attachment names: by the resource it references (even when that resource's
        name is null or known only at apply time), else by name. Never None without a note or an error."""
        self.accounted.add(r.address)
        origin = origin_of(value)
        if origin:
            pid = self.by_origin(origin, {_KIND_TYPE[kind]}, r)
            if pid:
                self.linked.setdefault(r.address, set()).add(pid)
                return pid
        if isinstance(value, Unknown) or value is None:
            why = f"cannot be resolved: {value.reason}" if value is not None else "is null"
            self.out.note(r.file, self.line_of(r, what), f"{r.address}: {self.expression(r, what)} {why}; "
                                                         "its policies are not linked to any principal")
            return None
        if not isinstance(value, str) or not value:
            self.out.error(r.file, self.line_of(r, what), f"{r.address}: {what} " + (
                "is an empty name" if value == "" else "must be a string"))
            return None
        name = value.rsplit("/", 1)[-1] if value.startswith("arn:") else str(value)
        pid = next((p for p, d in self.out.drafts.items()
                    if d.kind == kind and d.name == name and not d.name_is_prefix), None)
        if pid is None:
            pid = f"{kind}/{name}"
            self.out.principal(pid, kind, name=name, location=Location(r.file, r.line))
        self.linked.setdefault(r.address, set()).add(pid)
        return pid

    @staticmethod
    def expression(r: TfResource, what: str) -> str:
        """`role = aws_iam_role.this[0].name`: the argument as written, where the source has it."""
        expr = r.exprs.get(what)
        return f"{what} = {expr}" if expr else what

    @staticmethod
    def line_of(r: TfResource, what: str) -> int | None:
        lines = getattr(r.values, "key_lines", None) or {}
        return lines.get(what) or r.line

    def by_origin(self, origin: str, types: set, r: TfResource, table: dict | None = None) -> str | None:
        table = self.principal_res if table is None else table
        if origin in table and table[origin].type in types:
            return origin
        same_base = [a for a, x in table.items() if x.base == origin and x.type in types]
        if len(same_base) == 1:
            return same_base[0]
        keyed = [a for a in same_base if table[a].key == r.key and r.key is not None]
        return keyed[0] if len(keyed) == 1 else None

    def attachments(self) -> list[_Attach]:
        found: list[_Attach] = []
        for r in self.of_type(*ATTACHMENT_TYPES):
            kind, key = ATTACHMENT_TYPES[r.type]
            pid = self.target(r.values.get(key), kind, r, key)
            if pid:
                found.append(_Attach(pid, r.values.get("policy_arn"), r))
        for r in self.of_type("aws_iam_policy_attachment"):
            for key, kind in (("roles", "role"), ("users", "user"), ("groups", "group")):
                for value in self.items(r, key):
                    pid = self.target(value, kind, r, key)
                    if pid:
                        found.append(_Attach(pid, r.values.get("policy_arn"), r))
        for r in self.of_type("aws_iam_role"):
            for ref in self.items(r, "managed_policy_arns"):
                found.append(_Attach(r.address, ref, r, "managed_policy_arns"))
        for r in self.of_type(*EXCLUSIVE_ATTACHMENT_TYPES):
            kind, key = EXCLUSIVE_ATTACHMENT_TYPES[r.type]
            pid = self.target(r.values.get(key), kind, r, key)
            if pid is None:
                continue
            listed = self.items(r, "policy_arns")
            keep = {self.policy_key(ref, r) for ref in listed}
            dropped = [a for a in found if a.pid == pid and self.policy_key(a.ref, a.res) not in keep]
            for a in dropped:
                self.out.note(r.file, r.line, f"{r.address}: detaches {self.policy_key(a.ref, a.res)} from {pid} "
                                              "(exclusive attachments)", pid)
            found = [a for a in found if a not in dropped]
            have = {self.policy_key(a.ref, a.res) for a in found if a.pid == pid}
            found.extend(_Attach(pid, ref, r, "policy_arns") for ref in listed if self.policy_key(ref, r) not in have)
        return found

    def items(self, r: TfResource, key: str) -> list:
        value = r.values.get(key)
        if isinstance(value, Unknown):
            self.accounted.add(r.address)
            self.out.note(r.file, self.line_of(r, key), f"{r.address}: {self.expression(r, key)} cannot be "
                                                        f"resolved: {value.reason}")
            return []
        return as_list(value)

    def policy_key(self, ref, r: TfResource):
        origin = origin_of(ref)
        if origin:
            addr = self.by_origin(origin, {"aws_iam_policy"}, r, self.policies)
            if addr:
                return addr
        return getattr(ref, "text", None) or str(ref)

    def managed_policies(self, attachments: list[_Attach]) -> None:
        by_policy: dict[str, list[_Attach]] = {}
        for a in attachments:
            key = self.policy_key(a.ref, a.res)
            if key in self.policies:
                by_policy.setdefault(key, []).append(a)
                continue
            ref = aws_managed_in_any_partition(a.ref) or a.ref
            if isinstance(ref, Unknown):  # at the attachment's own line: the unknown may come from another file
                self.out.note(a.res.file, self.line_of(a.res, a.what),
                              f"{a.res.address}: policy ARN cannot be resolved: {ref.reason}", a.pid, grant=True)
                # the principal still shows the policy it has, its grant unknown
                self.out.drafts[a.pid].policies.append(Policy(name=ref.text or "unresolved policy ARN",
                                                              location=Location(a.res.file, a.res.line)))
            elif isinstance(ref, str):
                pol = self.out.managed_policy(str(ref), a.res.file, a.res.line, a.pid)
                if pol is not None:
                    self.out.drafts[a.pid].policies.append(pol)
            else:
                self.out.note(a.res.file, self.line_of(a.res, a.what), f"{a.res.address}: "
                              f"{self.expression(a.res, a.what)} is {'null' if ref is None else 'not a string'}"
                              "; the policy it attaches cannot be resolved", a.pid, grant=True)
        for address, r in self.policies.items():
            targets = list(dict.fromkeys(a.pid for a in by_policy.get(address, [])))
            name = r.values.get("name") or r.values.get("name_prefix") or address
            owner = targets[0] if len(targets) == 1 else (None if targets else address)
            policy = self.policy(str(name), r.values.get("policy"), r, r.line, owner)
            if not targets:
                draft = self.out.principal(address, "policy", name=str(name), location=Location(r.file, r.line))
                draft.policies.append(policy)
            for pid in targets:
                self.out.drafts[pid].policies.append(policy)

    def add_policy(self, pid: str, name: str, value, r: TfResource, line) -> None:
        """An inline policy of pid."""
        policy = self.policy(name, value, r, line, pid)
        self.inline.add(id(policy))
        self.out.drafts[pid].policies.append(policy)

    def policy(self, name: str, value, r: TfResource, line, owner: str | None) -> Policy:
        """Parse a policy value (JSON string, jsonencode, document reference) into a Policy."""
        origin = origin_of(value)
        if isinstance(value, Unknown) and origin in self.documents:
            value = Encoded(self.documents[origin])
        if value is None:
            self.out.error(r.file, line, f"{r.address}: policy {name} has no policy document")
            return Policy(name=name, location=Location(r.file, line))
        file = getattr(value, "file", None) or r.file
        try:
            doc = decode_json(value, file, line)
        except LoadError as e:
            self.out.error(file, e.line or line, f"{r.address}: policy {name} is not valid JSON: {e.message}")
            return Policy(name=name, location=Location(r.file, line))
        statements = doc.get("Statement") if isinstance(doc, dict) else None
        groups = _by_file(statements, file) if isinstance(statements, list) else [(file, doc)]
        parsed = []
        for gfile, gdoc in groups:
            pol = self.out.policy(name, gdoc, gfile, line if gfile == r.file else None, owner)
            parsed.extend(pol.statements)
        return Policy(name=name, statements=tuple(parsed), location=Location(r.file, line))

    def exclusive_inline(self, r: TfResource) -> None:
        """`*_policies_exclusive`: the listed inline policies stay, any other is removed at apply."""
        kind, key = EXCLUSIVE_INLINE_TYPES[r.type]
        pid = self.target(r.values.get(key), kind, r, key)
        names = self.items(r, "policy_names")
        if pid is None or isinstance(r.values.get("policy_names"), Unknown):
            return
        draft = self.out.drafts[pid]
        listed = {str(n) for n in names}
        for p in [p for p in draft.policies if id(p) in self.inline and p.name not in listed]:
            self.out.note(r.file, r.line, f"{r.address}: removes inline policy {p.name} from {pid} "
                                          "(exclusive inline policies)", pid)
            draft.policies.remove(p)
        defined = {p.name for p in draft.policies if id(p) in self.inline}
        for n in sorted(listed - defined):
            self.out.note(r.file, r.line, f"{r.address}: inline policy {n} of {pid} is not defined here; "
                                          "its document cannot be resolved", pid)

    def group_memberships(self) -> None:
        members: list[tuple[str, str]] = []  # (user pid, group pid)
        for r in self.of_type("aws_iam_user_group_membership"):
            user = self.target(r.values.get("user"), "user", r, "user")
            for g in self.items(r, "groups"):
                group = self.target(g, "group", r, "groups")
                if user and group:
                    members.append((user, group))
        for r in self.of_type("aws_iam_group_membership"):
            group = self.target(r.values.get("group"), "group", r, "group")
            for u in self.items(r, "users"):
                user = self.target(u, "user", r, "users")
                if user and group:
                    members.append((user, group))
        for user, group in dict.fromkeys(members):
            self.out.drafts[user].policies.extend(self.out.drafts[group].policies)


def _by_file(statements: list, default: str) -> list[tuple[str, dict]]:
    """Split a document's statements into runs from the same file (merged documents span files)."""
    groups: list[tuple[str, dict]] = []
    for st in statements:
        f = getattr(st, "file", None) or default
        if not groups or groups[-1][0] != f:
            groups.append((f, LDict({"Version": "2012-10-17", "Statement": LList(line=line_of(st))},
                                    line=line_of(st))))
        groups[-1][1]["Statement"].append(st)
    return groups or [(default, LDict({"Version": "2012-10-17", "Statement": LList()}))]
