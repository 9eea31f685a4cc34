"""Narrow `Resource: "*"`, or a wildcard ARN wider than needed, to the resources the actions were used on (issue
23), in the file's own syntax.

The plan comes from the resource-scope check's findings: a statement is narrowed when every action it
keeps has known resources there; its new Resource is the used ARNs its Resource covers. A used ARN that a
resource of the same file defines becomes a reference to it (`!GetAtt OrdersTable.Arn`, `!Ref Topic`,
`aws_dynamodb_table.orders.arn`), or in Terraform the output of a module call that resolves to exactly it
(`module.orders.table_arn`); the others are written as ARNs, with `${AWS::AccountId}`/`${AWS::Region}` (or
`data.aws_caller_identity`) where the file already uses them and the narrowed pattern leaves them open. A
statement whose actions need different resources is split, one statement per set of ARNs, and the actions
without resource data keep the Resource as written; where that is not safe (a Condition, a NotAction,
wildcard actions, several resources) it is left for a person, with a note. Nothing narrowed grants what the
statement did not.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ..checks.resource_scope import arn_fields
from ..model import Location, Statement
from .plan import Problem


@dataclass(frozen=True)
class ResourceFix:
    location: Location
    statement: Statement
    principals: tuple[str, ...]
    resources: tuple[str, ...]  # ARNs, sorted
    actions: tuple[str, ...]
    # a split: (actions, their ARNs) per new statement, and the actions that keep the statement's `*`
    groups: tuple = ()
    rest: tuple[str, ...] = ()
    accounts: frozenset = frozenset()  # the principal's baselines' accounts: only their ARNs take AccountId
    regional: bool = True  # False: the narrowed pattern names its region, which the new ARNs keep as written


def narrowings(results, catalog, config, removed: frozenset = frozenset(), kept_of=None):
    """(ResourceFix per statement, problems) from the resource-scope findings. `kept_of(location)`: the
    actions the statement keeps after the action fix (default: all it grants)."""
    import sys

    from ..checks import Analysis
    check = sys.modules.get("iamgate.checks.resource_scope")
    if check is None:
        from ..checks import resource_scope as check
    analysis = Analysis(tuple(results), (), catalog, config)
    by_loc: dict = {}
    for f in check.ResourceScope().run(analysis):
        if f.location is not None:
            slot = by_loc.setdefault(f.location, {"actions": {}, "principals": []})
            for a in f.actions:
                slot["actions"].setdefault(a, set()).update(f.resources)
            slot["principals"].append(f.principal)
    grants: dict = {}
    accounts: dict = {}
    for r in results:
        for st, acts in r.allows:
            if st.location in by_loc:
                grants.setdefault(st.location, [st, set()])[1].update(acts)
                accounts.setdefault(st.location, set()).update(
                    b.account for b in check.baselines_of(r) if b.account)
    out, problems = [], []
    for loc, slot in by_loc.items():
        if loc in removed or loc not in grants:
            continue
        st, granted = grants[loc]
        keep = set(kept_of(loc)) if kept_of else granted
        missing = sorted(a for a in keep if a not in slot["actions"])
        by_arns: dict = {}
        for a, arns in slot["actions"].items():
            if a in keep:
                by_arns.setdefault(tuple(sorted({_in_pattern(arn, st.resources) for arn in arns})), []).append(a)
        pids = tuple(dict.fromkeys(slot["principals"]))
        odd = sorted(a for arns in slot["actions"].values() for a in arns if "${" in a or "%{" in a)
        if odd:  # would read as a variable in `!Sub` or HCL
            problems.append(Problem(loc, f"Resource not narrowed: the used ARN {odd[0]} holds `${{` or `%{{`; "
                                         "narrow it by hand", pids[0]))
            continue
        fields = _fixed_fields(st)
        if "account" in fields:
            accounts[loc] = set()
        # `${AWS::Region}` (or the configuration's region) stands for one region: the stack's. Used ARNs in
        # several regions cannot all be in it, so each keeps the region it was used in.
        regional = "region" not in fields and len(_regions(slot["actions"].values())) <= 1
        if not missing and len(by_arns) == 1:
            arns = next(iter(by_arns))
            out.append(ResourceFix(loc, st, pids, arns, tuple(sorted(slot["actions"])),
                                   accounts=frozenset(accounts.get(loc, ())), regional=regional))
            continue
        why = ("it has a Condition" if st.condition else "its Action is a NotAction" if st.not_actions else
               "its Action has wildcards" if any("*" in a or "?" in a for a in st.actions) else "")
        if why or not by_arns:
            problems.append(Problem(loc, "Resource not narrowed: its actions need different resources"
                                         + (f" and {why}" if why else "") + "; split the statement by hand", pids[0]))
            continue
        groups = tuple((tuple(catalog.canonical(a) for a in sorted(acts)), arns)
                       for arns, acts in sorted(by_arns.items(), key=lambda kv: sorted(kv[1])))
        out.append(ResourceFix(loc, st, pids, (), tuple(sorted(slot["actions"])), groups,
                               tuple(catalog.canonical(a) for a in missing), frozenset(accounts.get(loc, ())),
                               regional))
    return sorted(out, key=lambda f: (f.location.file, f.location.line or 0)), problems


def _regions(arn_sets) -> set:
    """The regions the used ARNs name (global resources, such as S3 buckets, name none)."""
    return {parts[3] for arns in arn_sets for arn in arns if len(parts := arn_fields(arn)) >= 6 and parts[3]}


def _in_pattern(arn: str, resources) -> str:
    """A used ARN as the narrowed statement may grant it: where its one wildcard Resource writes the partition,
    region or account as a variable (`${AWS::AccountId}`, `${data.aws_region.x.name}`), the ARN keeps that
    variable, so the narrowed grant stays within the old one whatever it resolves to."""
    if len(resources) != 1 or resources[0] == "*":
        return arn
    pattern, parts = arn_fields(resources[0]), arn_fields(arn)
    if len(pattern) < 6 or len(parts) < 6:
        return arn
    for i in (1, 3, 4):
        if "${" in pattern[i]:
            parts[i] = pattern[i]
    return ":".join(parts)


def _fixed_fields(st: Statement) -> set:
    """The ARN fields (`region`, `account`) a wildcard Resource names literally: a narrowed ARN keeps them as
    written rather than `${AWS::Region}`, which may be another region and grant what the statement did not."""
    if len(st.resources) != 1 or st.resources[0] == "*":
        return set()
    parts = arn_fields(st.resources[0])
    if len(parts) < 6:
        return set()
    return {name for name, value in (("region", parts[3]), ("account", parts[4]))
            if not re.search(r"[*?]|\$\{", value)}


# -- what the file defines -------------------------------------------------------------------------------

# CloudFormation type -> (name property, reference to its ARN as YAML short form, as JSON)
CFN_TYPES = {
    "AWS::DynamoDB::Table": ("TableName", "!GetAtt {id}.Arn", {"Fn::GetAtt": ["{id}", "Arn"]}),
    "AWS::SNS::Topic": ("TopicName", "!Ref {id}", {"Ref": "{id}"}),
    "AWS::SQS::Queue": ("QueueName", "!GetAtt {id}.Arn", {"Fn::GetAtt": ["{id}", "Arn"]}),
    "AWS::S3::Bucket": ("BucketName", "!GetAtt {id}.Arn", {"Fn::GetAtt": ["{id}", "Arn"]}),
    "AWS::SecretsManager::Secret": ("Name", "!Ref {id}", {"Ref": "{id}"}),
    "AWS::Lambda::Function": ("FunctionName", "!GetAtt {id}.Arn", {"Fn::GetAtt": ["{id}", "Arn"]}),
    "AWS::Serverless::Function": ("FunctionName", "!GetAtt {id}.Arn", {"Fn::GetAtt": ["{id}", "Arn"]}),
    "AWS::Logs::LogGroup": ("LogGroupName", "!GetAtt {id}.Arn", {"Fn::GetAtt": ["{id}", "Arn"]}),
    "AWS::Kinesis::Stream": ("Name", "!GetAtt {id}.Arn", {"Fn::GetAtt": ["{id}", "Arn"]}),
    "AWS::StepFunctions::StateMachine": ("StateMachineName", "!Ref {id}", {"Ref": "{id}"}),
    "AWS::ECR::Repository": ("RepositoryName", "!GetAtt {id}.Arn", {"Fn::GetAtt": ["{id}", "Arn"]}),
    "AWS::IAM::Role": ("RoleName", "!GetAtt {id}.Arn", {"Fn::GetAtt": ["{id}", "Arn"]}),
}
# Terraform resource type -> the argument holding the name
TF_TYPES = {
    "aws_dynamodb_table": "name", "aws_sns_topic": "name", "aws_sqs_queue": "name", "aws_s3_bucket": "bucket",
    "aws_secretsmanager_secret": "name", "aws_ssm_parameter": "name", "aws_lambda_function": "function_name",
    "aws_cloudwatch_log_group": "name", "aws_kinesis_stream": "name", "aws_sfn_state_machine": "name",
    "aws_ecr_repository": "name", "aws_iam_role": "name",
}


def arn_name(arn: str) -> tuple[str, str, str | None]:
    """(service, resource name, S3 object prefix) of an ARN, as a template's name property holds it."""
    parts = arn_fields(arn)
    service, rest = parts[2], parts[5] if len(parts) > 5 else ""
    if service == "s3":
        bucket, slash, key = rest.partition("/")
        return service, bucket, key if slash else None
    if service == "secretsmanager":
        name = rest.partition(":")[2]
        return service, re.sub(r"-(\?{6}|[A-Za-z0-9]{6})$", "", name), None
    if service in ("sns", "sqs"):
        return service, rest, None
    if service == "logs":
        return service, rest.split(":")[1] if ":" in rest else rest, None
    if service == "states":
        return service, rest.split(":")[1] if ":" in rest else rest, None
    if service == "lambda":
        return service, rest.split(":")[1] if ":" in rest else rest, None
    if service == "ssm":
        return service, rest.partition("/")[2], None
    return service, rest.partition("/")[2] or rest, None


_CFN_SERVICE = {"AWS::DynamoDB::Table": "dynamodb", "AWS::SNS::Topic": "sns", "AWS::SQS::Queue": "sqs",
                "AWS::S3::Bucket": "s3", "AWS::SecretsManager::Secret": "secretsmanager", "AWS::Lambda::Function":
                "lambda", "AWS::Serverless::Function": "lambda", "AWS::Logs::LogGroup": "logs",
                "AWS::Kinesis::Stream": "kinesis", "AWS::StepFunctions::StateMachine": "states",
                "AWS::ECR::Repository": "ecr", "AWS::IAM::Role": "iam"}
_TF_SERVICE = {"aws_dynamodb_table": "dynamodb", "aws_sns_topic": "sns", "aws_sqs_queue": "sqs", "aws_s3_bucket": "s3",
               "aws_secretsmanager_secret": "secretsmanager", "aws_ssm_parameter": "ssm",
               "aws_lambda_function": "lambda", "aws_cloudwatch_log_group": "logs", "aws_kinesis_stream": "kinesis",
               "aws_sfn_state_machine": "states", "aws_ecr_repository": "ecr", "aws_iam_role": "iam"}


def cfn_defined(doc) -> dict:
    """(service, name) -> (logical id, type) for the resources a template names literally."""
    out = {}
    res = doc.get("Resources") if isinstance(doc, dict) else None
    for lid, r in (res or {}).items():
        if not isinstance(r, dict) or r.get("Type") not in CFN_TYPES:
            continue
        name = (r.get("Properties") or {}).get(CFN_TYPES[r["Type"]][0])
        if isinstance(name, str):
            key = name.lstrip("/") if r["Type"] == "AWS::SSM::Parameter" else name
            out[(_CFN_SERVICE[r["Type"]], key)] = (lid, r["Type"])
    return out


_TF_BLOCK = re.compile(r'resource\s+"(aws_[a-z0-9_]+)"\s+"([A-Za-z0-9_-]+)"\s*\{')


def tf_defined(text: str) -> dict:
    out = {}
    for m in _TF_BLOCK.finditer(text):
        arg = TF_TYPES.get(m.group(1))
        if not arg:
            continue
        body = text[m.end():m.end() + 4000]
        nm = re.search(rf'^\s*{arg}\s*=\s*"([^"$]+)"', body, re.M)
        if nm:
            name = nm.group(1).lstrip("/") if m.group(1) == "aws_ssm_parameter" else nm.group(1)
            out[(_TF_SERVICE[m.group(1)], name)] = f"{m.group(1)}.{m.group(2)}"
    return out


# -- rendering ----------------------------------------------------------------------------------------

def _ours(arn: str, accounts) -> bool:
    """Whether a used ARN may be a resource the file defines: a name matches only in the principal's own
    account (its baselines', or the narrowed pattern's own-account variable); an ARN without an account (an
    S3 bucket: its name is global) always may."""
    parts = arn_fields(arn)
    if len(parts) < 6 or not parts[4] or parts[4] in accounts:
        return True
    return parts[4] == "${AWS::AccountId}" or "aws_caller_identity." in parts[4]  # the pattern's own-account variable


def cfn_item(arn: str, defined: dict, uses_pseudo: bool, as_json: bool, accounts=frozenset(), regional=True):
    """One item of the narrowed Resource. The account becomes `${AWS::AccountId}` only where it is the account of
    a baseline of the principal (another account's resource stays that account's); the region becomes
    `${AWS::Region}` only when `regional` (the narrowed pattern does not name one region)."""
    service, name, key = arn_name(arn)
    hit = defined.get((service, name)) if regional and _ours(arn, accounts) else None  # (see tf_item)
    if hit:
        lid, rtype = hit
        if key is not None:  # an object prefix of a bucket the template defines
            return ({"Fn::Sub": f"${{{lid}.Arn}}/{key}"} if as_json else f"!Sub {json.dumps(f'${{{lid}.Arn}}/{key}')}")
        if as_json:
            return json.loads(json.dumps(CFN_TYPES[rtype][2]).replace("{id}", lid))
        return CFN_TYPES[rtype][1].format(id=lid)
    parts = arn_fields(arn)
    own = len(parts) == 6 and parts[4] in accounts
    if uses_pseudo and len(parts) == 6 and (own or (regional and parts[3])):
        region = "${AWS::Region}" if regional and parts[3] and "${" not in parts[3] else parts[3]
        arn = ":".join([parts[0], "${AWS::Partition}", parts[2], region, "${AWS::AccountId}" if own else parts[4],
                        parts[5]])
    if "${" in arn:  # a pseudo parameter: the narrowed pattern's own, or the file's
        return {"Fn::Sub": arn} if as_json else f"!Sub {json.dumps(arn)}"
    return arn if as_json else json.dumps(arn)  # a JSON string is a YAML double-quoted scalar


def tf_item(arn: str, defined: dict, caller_identity: str | None, region: str | None = None,
            accounts=frozenset(), regional=True) -> str:
    if ("arn", arn) in defined:
        return defined[("arn", arn)]
    service, name, key = arn_name(arn)
    if not regional or not _ours(arn, accounts):  # a resource of this configuration is in its region (which the
        defined = {}  # narrowed pattern may not be) and its account: a same-named one elsewhere is another
    bucket = defined.get(("arn", arn.partition("/")[0])) if service == "s3" and key is not None else None
    if bucket:  # an object prefix of a bucket whose ARN a module outputs
        return json.dumps(f"${{{bucket}}}/{key}")
    ref = defined.get((service, name))
    if ref:
        return json.dumps(f"${{{ref}.arn}}/{key}") if key is not None else f"{ref}.arn"
    ref = defined.get(("module", service, name))  # a module output that is the `arn` of the resource so named
    if ref:
        return json.dumps(f"${{{ref}}}/{key}") if key is not None else ref
    parts = arn_fields(arn)
    own = caller_identity and len(parts) == 6 and parts[4] in accounts
    region = region if regional else None
    if len(parts) == 6 and (own or (region and parts[3])):
        if own:
            parts[4] = f"${{{caller_identity}.account_id}}"
        if region and parts[3] and "${" not in parts[3]:
            parts[3] = f"${{{region}.name}}"
        return json.dumps(":".join(parts))
    return json.dumps(arn)


_YAML_RES = re.compile(r'^(?P<indent>[ \t]*(?:-[ \t]+)?)Resource:[ \t]*(?P<value>[^\s#][^\n]*?)'
                       r'[ \t]*(?:[ \t]#[^\n]*)?$', re.M)
# the same, written as a block list on the next lines (`Resource:` then `  - "*"`): narrowed where it has one item
_YAML_RES_LIST = re.compile(r'^(?P<indent>[ \t]*(?:-[ \t]+)?)Resource:[ \t]*(?:#[^\n]*)?\n(?P<item>[ \t]*)-[ \t]+'
                            r'(?P<value>[^\s#][^\n]*?)[ \t]*(?:[ \t]#[^\n]*)?$', re.M)
JSON_STR = r'"(?:[^"\\\n]|\\.)*"'  # a JSON (or HCL) string literal on one line
_JSON_RES = re.compile(rf'"Resource"\s*:\s*(?P<value>{JSON_STR}|\[\s*{JSON_STR}\s*\]|'
                       rf'\{{\s*"Fn::Sub"\s*:\s*{JSON_STR}\s*\}})')
_TF_RES = re.compile(rf'\b(?P<key>Resource|resources)\s*=\s*(?P<value>{JSON_STR}|\[\s*{JSON_STR}\s*,?\s*\])')
_STATEMENT_END = re.compile(r'"?(?:Effect|effect)"?\s*[:=]|\bstatement\s*\{|^\s*-\s*Effect:', re.M)


def _span(text: str, line: int) -> tuple[int, int]:
    """The text of the statement starting at `line`: up to the next statement's start."""
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    start = starts[line - 1] if line - 1 < len(starts) else len(text)
    first = _STATEMENT_END.search(text, start)
    nxt = _STATEMENT_END.search(text, first.end()) if first else None
    end = nxt.start() if nxt else len(text)
    if nxt and text[nxt.start():nxt.end()].lstrip().startswith("-"):
        end = nxt.start()
    return start, end


def edits(kind: str, text: str, fixes: list[ResourceFix], path=None, roots=(), outputs_of: dict | None = None):
    """(Edit list, problems) for one file; `kind`: yaml | json | terraform. `path`, `roots`: where the file is
    and where its configuration may be read (a Terraform file's module calls). `outputs_of`: the module outputs
    of each directory evaluated so far in this run (the files are not written until every edit is known)."""
    from .edits import Edit
    out, problems = [], []
    if kind == "terraform":
        defined = tf_defined(text)
        if path is not None and fixes:
            from ..sources.terraform import configuration
            where = (path.parent.resolve(), tuple(roots or [path.parent.resolve()]))
            outputs_of = {} if outputs_of is None else outputs_of
            outputs = outputs_of.get(where)
            if outputs is None:
                outputs = outputs_of[where] = configuration.module_outputs(where[0], list(where[1]), TF_TYPES)
            # a module output resolved to exactly a used ARN: referenced (the first output, by name, if several);
            # one that is the `arn` of a resource the module names: matched by name, as the file's own resources
            for ref, value in sorted(outputs.items(), reverse=True):
                if isinstance(value, str):
                    defined[("arn", value)] = ref
                else:
                    rtype, name = value
                    defined[("module", _TF_SERVICE[rtype], name.lstrip("/") if rtype == "aws_ssm_parameter"
                             else name)] = ref
        m = re.search(r'data\s+"aws_caller_identity"\s+"([A-Za-z0-9_-]+)"', text)
        caller = f"data.aws_caller_identity.{m.group(1)}" if m else None
        m = re.search(r'data\s+"aws_region"\s+"([A-Za-z0-9_-]+)"', text)
        region = f"data.aws_region.{m.group(1)}" if m else None
    else:
        doc = None
        try:
            if kind == "json":
                doc = json.loads(text)
            else:
                from ..sources.loaders import load_yaml
                doc = load_yaml(text)
        except Exception:  # noqa: BLE001 - a file the sources read differently: no references, plain ARNs
            doc = None
        defined = cfn_defined(doc) if isinstance(doc, dict) else {}
        uses_pseudo = "AWS::AccountId" in text
    for f in fixes:
        if f.groups:
            from . import splits
            render = {"yaml": splits.split_yaml, "json": splits.split_json, "terraform": splits.split_tf}[kind]
            ctx = (defined, caller, region) if kind == "terraform" else (defined, uses_pseudo)
            edit = render(text, f, ctx) if splits.safe(f) else None
            if edit is None:
                problems.append(Problem(f.location, "Resource not narrowed: the statement's actions need different "
                                                    "resources and its text could not be split here; split it by "
                                                    "hand", f.principals[0]))
            else:
                out.append(Edit(edit[0], edit[1], edit[2], f.location))
            continue
        start, end = _span(text, f.location.line or 1)
        rx = {"yaml": _YAML_RES, "json": _JSON_RES, "terraform": _TF_RES}[kind]
        m, form = rx.search(text, start, end), kind
        if m is None and kind == "terraform":  # a JSON policy in a heredoc (`<<POLICY`, `<<-EOT`)
            m, form = _JSON_RES.search(text, start, end), "heredoc"
        if m is None and kind == "yaml":
            m = _YAML_RES_LIST.search(text, start, end)
            if m is not None and _more_items(text, m, end):
                m = None
        if m is None or not _narrows(form, m.group("value"), f.resources):
            problems.append(Problem(f.location, "Resource not narrowed: it is not one literal \"*\" or wildcard ARN "
                                                "here; narrow it to " + ", ".join(f.resources) + " by hand",
                                    f.principals[0]))
            continue
        if kind == "terraform":
            items = [tf_item(a, defined, caller, region, f.accounts, f.regional) for a in f.resources]
            if form == "heredoc":  # a template: a reference is interpolated into a JSON string
                items = [i if i.startswith('"') else f'"${{{i}}}"' for i in items]
            new = "[" + ", ".join(items) + "]"
        elif kind == "json":
            new = json.dumps([cfn_item(a, defined, uses_pseudo, True, f.accounts, f.regional) for a in f.resources])
        else:
            items = [cfn_item(a, defined, uses_pseudo, False, f.accounts, f.regional) for a in f.resources]
            pad = " " * (len(m.group("indent").replace("-", " ")) + 2)
            new = "".join("\n" + pad + "- " + i for i in items)
        s, e = m.span("value")
        if kind == "yaml":
            s = text.index(":", m.start()) + 1  # the block list starts on the next line
        out.append(Edit(s, e, new, f.location))
    return out, problems


def _more_items(text: str, m, end: int) -> bool:
    """Whether the block list `m` matched the first item of goes on with another item before `end`."""
    for line in text[m.end():end].split("\n")[1:]:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        return line.startswith(m.group("item") + "-")
    return False


def written_resource(kind: str, value: str) -> str | None:
    """The one resource a Resource value written as `value` names (`"*"`, `arn:aws:s3:::*`, `!Sub "arn:…"`,
    `["…"]`, `{"Fn::Sub": "…"}`), or None when it is anything else (several, a reference, a function)."""
    try:
        if kind == "yaml":
            import yaml
            if value == "*":
                return value
            tagged = re.match(r"!Sub[ \t]+(?=\S)", value)
            got = yaml.safe_load(value[tagged.end():] if tagged else value)
        else:
            got = json.loads(value)
    except Exception:  # noqa: BLE001 - not a plain scalar (a tag, an alias, bad syntax): left for a person
        return None
    if isinstance(got, list) and len(got) == 1:
        got = got[0]
    if isinstance(got, dict) and kind in ("json", "yaml") and list(got) == ["Fn::Sub"]:
        got = got["Fn::Sub"]
    if not isinstance(got, str):
        return None
    return got.replace("$${", "${") if kind in ("terraform", "heredoc") else got


def _narrows(kind: str, value: str, arns) -> bool:
    """Is the Resource written as `value` one `*`, or one wildcard ARN covering each of `arns`? Narrowing it to
    them then never grants what it did not."""
    from ..checks.resource_scope import covers
    written = written_resource(kind, value)
    if written is None or not arns:
        return False
    return written == "*" or (re.search(r"[*?]", re.sub(r"\$\{[^}]*\}", "", written)) is not None
                              and all(covers(written, a) for a in arns))
