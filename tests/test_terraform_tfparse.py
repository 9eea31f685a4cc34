"""A differential check of the Terraform evaluator against an independent one, tfparse (trivy's).

For every root module of ../shared/corpus/terraform, both evaluators read the same folder. For each
principal that both resolve fully, the Allow actions (and the AWS managed policy ARNs) must be equal.
The differences that remain are listed in KNOWN with the reason; the list must stay exact.

"Fully" excludes, on tfparse's side, its known faults: a whole `Statement` (or an `effect`) left null or
as a reference when any value in it is unknown, `templatefile()` unsupported (the policy is not JSON),
and stand-ins for `random_*` values (an attachment whose target matches no principal makes its whole
root incomparable). On iamgate's
side it excludes every principal with an unresolved note, and every root with an unlinked attachment.
"""
from __future__ import annotations

import json

import pytest

from iamgate.sources.terraform.iam import PRINCIPAL_TYPES

tfparse = pytest.importorskip("tfparse")

# (root module, principal address) -> why the two evaluators disagree there
KNOWN: dict[tuple[str, str], str] = {
    ("terraform-aws-modules/terraform-aws-eks/examples/karpenter", "module.karpenter.aws_iam_role.controller[0]"):
        "tfparse drops the dynamic statement AllowInterruptionQueueActions (sqs:DeleteMessage, GetQueueUrl, "
        "ReceiveMessage): its for_each is `local.enable_spot_termination ? [1] : []`, and both variables behind "
        "that local default to true, so Terraform renders it, as iamgate does",
}

_ATTACH = {"aws_iam_role_policy_attachment": "role", "aws_iam_user_policy_attachment": "user",
           "aws_iam_group_policy_attachment": "group"}
_INLINE = {"aws_iam_role_policy": "role", "aws_iam_user_policy": "user", "aws_iam_group_policy": "group"}
_UNCOMPARED = {"aws_iam_role_policies_exclusive",
               "aws_iam_role_policy_attachments_exclusive", "aws_iam_user_policy_attachments_exclusive",
               "aws_iam_group_policy_attachments_exclusive", "aws_iam_user_policies_exclusive",
               "aws_iam_group_policies_exclusive"}
_UNRESOLVED = None  # a grant one evaluator could not resolve fully


def _statement_actions(statements) -> set | None:
    out: set = set()
    for st in statements if isinstance(statements, list) else [statements]:
        effect = st.get("Effect", st.get("effect", "Allow")) if isinstance(st, dict) else None
        if not isinstance(effect, str):  # tfparse leaves an unset optional attribute as a reference
            return _UNRESOLVED
        if effect != "Allow":
            continue
        if st.get("NotAction") or st.get("not_actions"):
            return _UNRESOLVED
        actions = st.get("Action", st.get("actions"))
        actions = [actions] if isinstance(actions, str) else actions
        if not isinstance(actions, list) or not all(isinstance(a, str) and "${" not in a for a in actions):
            return _UNRESOLVED
        out.update(a.lower() for a in actions)
    return out


class TfparseGrants:
    """The grants of one root module as tfparse evaluates it, linked the way Terraform links them."""

    def __init__(self, parsed: dict):
        self.by_id = {}
        for entries in parsed.values():
            for e in entries if isinstance(entries, list) else []:
                if isinstance(e, dict) and "id" in e:
                    self.by_id[e["id"]] = e
        self.parsed = parsed
        self.unlinked = False
        self.grants: dict[str, set | None] = {}
        for rtype in PRINCIPAL_TYPES:
            for e in parsed.get(rtype, []):
                self.grants[e["__tfmeta"]["path"]] = set()

    def entries(self, rtype):
        return self.parsed.get(rtype, []) or []

    def add(self, principal: str | None, actions: set | None) -> None:
        if principal is None or principal not in self.grants:
            self.unlinked = True  # some grant reaches no principal: none of this root is compared
            return
        if actions is None or self.grants[principal] is None:
            self.grants[principal] = None
        else:
            self.grants[principal] |= actions

    def referenced(self, entry, label: str) -> list[str]:
        refs = entry["__tfmeta"].get("references") or []
        return [self.by_id[r["id"]]["__tfmeta"]["path"] for r in refs
                if r.get("label") == label and r.get("id") in self.by_id]

    def target(self, entry, value, rtype) -> str | None:
        """tfparse writes a reference to a resource as that resource's id, or as {"__attribute__": ...}."""
        if isinstance(value, str) and value in self.by_id:
            found = self.by_id[value]["__tfmeta"]
            return found["path"] if found.get("label") == rtype else None
        refs = self.referenced(entry, rtype)
        if isinstance(value, dict) and len(refs) == 1:
            return refs[0]
        if isinstance(value, str):  # a literal name
            same = [e["__tfmeta"]["path"] for e in self.entries(rtype) if e.get("name") == value]
            return same[0] if len(same) == 1 else None
        return None

    def policy(self, value) -> set | None:
        if isinstance(value, str) and value in self.by_id:
            return self.document(self.by_id[value])
        if isinstance(value, str):
            try:
                doc = json.loads(value)
            except ValueError:
                return _UNRESOLVED
            return _statement_actions(doc.get("Statement")) if isinstance(doc, dict) else _UNRESOLVED
        return _UNRESOLVED

    def document(self, doc) -> set | None:
        if doc["__tfmeta"].get("label") != "aws_iam_policy_document":
            return _UNRESOLVED
        if any(doc.get(k) for k in ("source_policy_documents", "override_policy_documents", "source_json",
                                    "override_json")):
            return _UNRESOLVED
        statements = doc.get("statement")
        return _statement_actions(statements) if statements is not None else set()

    def policy_arn(self, entry, value) -> set | None:
        if isinstance(value, str) and value in self.by_id:
            pol = self.by_id[value]
            return self.policy(pol.get("policy")) if pol["__tfmeta"].get("label") == "aws_iam_policy" else _UNRESOLVED
        refs = self.referenced(entry, "aws_iam_policy")
        if isinstance(value, dict) and len(refs) == 1:
            pol = next(e for e in self.entries("aws_iam_policy") if e["__tfmeta"]["path"] == refs[0])
            return self.policy(pol.get("policy"))
        if isinstance(value, str) and ":iam::aws:policy/" in value and "${" not in value:
            return {"managed:" + value.split(":iam::aws:policy/", 1)[1].lower()}
        return _UNRESOLVED

    def run(self) -> dict[str, set | None]:
        for rtype, kind in _ATTACH.items():
            ptype = "aws_iam_" + kind
            for e in self.entries(rtype):
                self.add(self.target(e, e.get(kind), ptype), self.policy_arn(e, e.get("policy_arn")))
        for rtype, kind in _INLINE.items():
            ptype = "aws_iam_" + kind
            for e in self.entries(rtype):
                self.add(self.target(e, e.get(kind), ptype), self.policy(e.get("policy")))
        for e in self.entries("aws_iam_policy_attachment"):
            for kind in ("role", "user", "group"):
                for path in self.referenced(e, "aws_iam_" + kind):
                    self.add(path, self.policy_arn(e, e.get("policy_arn")))
        for e in self.entries("aws_iam_role"):
            path = e["__tfmeta"]["path"]
            inline = e.get("inline_policy")
            for block in inline if isinstance(inline, list) else [inline] if inline else []:
                self.add(path, self.policy(block.get("policy")) if isinstance(block, dict) else _UNRESOLVED)
            for arn in e.get("managed_policy_arns") or []:
                self.add(path, self.policy_arn(e, arn))
        memberships = [(e.get("group"), e.get("users"), e) for e in self.entries("aws_iam_group_membership")]
        memberships += [(g, [e.get("user")], e) for e in self.entries("aws_iam_user_group_membership")
                        for g in (e.get("groups") or [None])]
        for group, users, e in memberships:
            gpath = self.target(e, group, "aws_iam_group")
            for user in users if isinstance(users, list) else [None]:
                upath = self.target(e, user, "aws_iam_user")
                self.add(upath, self.grants.get(gpath, _UNRESOLVED) if gpath else _UNRESOLVED)
        for rtype in _UNCOMPARED:
            for e in self.entries(rtype):
                for kind in ("role", "user", "group"):
                    for path in self.referenced(e, "aws_iam_" + kind):
                        self.grants[path] = _UNRESOLVED
        return dict.fromkeys(self.grants, _UNRESOLVED) if self.unlinked else self.grants


def iamgate_grants(result) -> dict[str, set | None]:
    unlinked = any(u.principal_id is None and "not linked to any principal" in u.message for u in result.unresolved)
    noted = {u.principal_id for u in result.unresolved if not (
        u.message.startswith("managed policy ") and "is not in the managed-policy cache" in u.message)}
    out: dict[str, set | None] = {}
    address = {p.id: p.id.split("#", 1)[-1] for p in result.principals}  # a module read from two roots
    ids = list(address.values())
    for p in result.principals:
        if p.kind == "policy":
            continue
        actions: set | None = set()
        for pol in p.policies:
            if pol.managed_arn:
                actions.add("managed:" + pol.managed_arn.split(":iam::aws:policy/", 1)[-1].lower())
                continue
            for s in pol.statements:
                if s.is_allow:
                    if s.not_actions or any("${" in a for a in s.actions):
                        actions = None
                        break
                    actions.update(a.lower() for a in s.actions)
            if actions is None:
                break
        # an address declared in several files of one folder is not one configuration (tfparse merges them)
        out[address[p.id]] = None if (unlinked or p.id in noted or ids.count(address[p.id]) > 1) else actions
    return out


@pytest.fixture(scope="module")
def compared(terraform_corpus):
    rows = []
    for module_root, result in terraform_corpus.roots:
        ours = iamgate_grants(result)
        if not ours:
            continue  # only principals both evaluators see are compared
        try:
            theirs = TfparseGrants(tfparse.load_from_path(str(module_root), allow_downloads=False)).run()
        except tfparse.ParseError:
            continue
        rel = terraform_corpus.ws.rel(module_root)
        for address in sorted(set(ours) & set(theirs)):
            rows.append((rel, address, ours[address], theirs[address]))
    return rows


def test_fully_resolved_principals_agree_with_tfparse(compared):
    both = [(r, a, o, t) for r, a, o, t in compared if o is not None and t is not None]
    differ = {(r, a): (sorted(o - t), sorted(t - o)) for r, a, o, t in both if o != t}
    for key, (only_ours, only_theirs) in sorted(differ.items()):
        print(key, "iamgate only:", only_ours[:8], "tfparse only:", only_theirs[:8])
    agree = len(both) - len(differ)
    ours = sum(1 for *_, o, _ in compared if o is not None)
    theirs = sum(1 for *_, t in compared if t is not None)
    print(f"{len(compared)} principals in both; fully resolved by iamgate {ours}, by tfparse {theirs}, "
          f"by both {len(both)}; {agree} agree")
    assert len(both) >= 100
    assert set(differ) == set(KNOWN)
