"""AWS SAM templates: the IAM roles the SAM transform generates, then plain CloudFormation.

SAM resources are rewritten into the `AWS::IAM::Role` resources that `aws-sam-translator`
would generate (same logical ids, same managed policies, policy templates expanded from the
translator's own `policy_templates.json`), and the CloudFormation extractor reads the result.
The translator's full transform, run offline (`_sam_transform`), then adds every role and policy it
generates that this expansion lacks, at the line of the SAM entry its logical id comes from.
Nothing is deployed and nothing calls the network.
"""
from __future__ import annotations

from collections import Counter
from contextlib import contextmanager
from functools import lru_cache

from .. import SOURCES, Workspace
from ..collector import Collector
from ..loaders import LDict, LList, line_of
from ..policy_document import Unknown
from .evaluator import Template, is_intrinsic
from .sam_transform import TransformRoles, transform_roles
from .templates import CloudFormationSource, is_template, transforms

SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
FUNCTION, STATE_MACHINE = "AWS::Serverless::Function", "AWS::Serverless::StateMachine"
NO_VALUE = {"Ref": "AWS::NoValue"}


@lru_cache(maxsize=1)
def policy_templates():
    """The translator's packaged policy templates (its own processor, not a copy)."""
    from samtranslator.policy_template_processor.processor import PolicyTemplatesProcessor
    return PolicyTemplatesProcessor(PolicyTemplatesProcessor.get_default_policy_templates_json())


@lru_cache(maxsize=1)
def managed_policy_names() -> dict:
    """SAM's bundled map of AWS managed policy names to ARNs (what `Policies: AmazonS3ReadOnlyAccess` means)."""
    from samtranslator.internal.managed_policies import get_bundled_managed_policy_map
    return get_bundled_managed_policy_map("aws") or {}


@contextmanager
def _partition():
    """The translator derives the partition from the local AWS region; scan as the `aws` partition."""
    from samtranslator.translator.arn_generator import ArnGenerator
    saved = ArnGenerator.BOTO_SESSION_REGION_NAME
    ArnGenerator.BOTO_SESSION_REGION_NAME = "us-east-1"
    try:
        yield ArnGenerator
    finally:
        ArnGenerator.BOTO_SESSION_REGION_NAME = saved


def _ldict(items: dict, line: int | None) -> LDict:
    out = LDict(items, line=line)
    for k in items:
        out.key_lines[k] = line
    return out


def _relined(node, line):
    """Translator output has no lines; give every mapping and list the line of the SAM entry."""
    if isinstance(node, dict):
        out = LDict(line=line_of(node, line))
        for k, v in node.items():
            out[k] = _relined(v, line)
            out.key_lines[k] = getattr(node, "key_lines", {}).get(k, line)
        return out
    if isinstance(node, list):
        return LList((_relined(v, line) for v in node), line=line_of(node, line))
    return node


@SOURCES.register
class SamSource(CloudFormationSource):
    name = "sam"
    priority = 40  # before plain CloudFormation, which would read the template without SAM's roles
    description = "AWS SAM templates: functions' and state machines' generated roles, policy templates, Globals"

    def __init__(self):
        self.stats: Counter = Counter()  # policy templates expanded / unresolved, roles generated

    def accepts(self, doc) -> bool:
        return is_template(doc) and SAM_TRANSFORM in transforms(doc)

    def extract(self, doc, file: str, workspace: Workspace, out: Collector, template: Template | None = None):
        resources = doc.get("Resources")
        if not isinstance(resources, dict):
            return super().extract(doc, file, workspace, out, template)
        tpl = self.template(doc, workspace)
        expander = _SamExpander(self, doc, tpl, file, out)
        generated = expander.run()
        expander.from_transform(transform_roles(doc, workspace.options.parameters))
        if generated:
            new_resources = LDict(resources, line=line_of(resources))
            new_resources.key_lines.update(getattr(resources, "key_lines", {}))
            for lid, res in generated.items():
                if lid in new_resources:
                    out.error(file, line_of(res), f"SAM would generate {lid}, but the template already defines it")
                    continue
                new_resources[lid] = res
            doc = LDict(doc, line=line_of(doc))
            doc["Resources"] = new_resources
            tpl = self.template(doc, workspace)
        result = super().extract(doc, file, workspace, out, tpl)
        for pid, aliases in expander.aliases.items():
            if pid in out.drafts:
                out.drafts[pid].aliases.extend(a for a in aliases if a not in out.drafts[pid].aliases)
        return result


class _SamExpander:
    """SAM resources -> the IAM resources the transform generates for them."""

    def __init__(self, source: SamSource, doc, tpl: Template, file: str, out: Collector):
        self.source, self.doc, self.tpl, self.file, self.out = source, doc, tpl, file, out
        self.generated: dict[str, LDict] = {}
        self.aliases: dict[str, list[str]] = {}
        self.globals = self._globals()

    def _globals(self):
        if "Globals" not in self.doc:
            return None
        from samtranslator.plugins.globals.globals import Globals
        try:
            return Globals(self.doc)
        except Exception as e:  # the translator's own validation: InvalidGlobalsSectionException
            message = str(getattr(e, "message", e)).split(". Must be one of", 1)[0]
            self.out.error(self.file, self.doc.line_of("Globals") if isinstance(self.doc, LDict) else None,
                           f"Globals: {message}; Globals not applied")
            return None

    def run(self) -> dict[str, LDict]:
        deploy_preferences = []
        for lid, res in self.tpl.resources.items():
            if not isinstance(res, dict) or res.get("Type") not in (FUNCTION, STATE_MACHINE):
                continue
            props = res.get("Properties", {})
            if not isinstance(props, dict):
                continue  # the CloudFormation extractor reports it
            if self.globals is not None:
                try:
                    props = self.globals.merge(res["Type"], props, lid, res.get("IgnoreGlobals"))
                except Exception as e:  # noqa: BLE001 - the translator's merge errors are user errors
                    self.out.error(self.file, line_of(res), f"{lid}: cannot apply Globals: {getattr(e, 'message', e)}")
            if res["Type"] == FUNCTION:
                self.function(lid, res, props)
                pref = self.present(props, "DeploymentPreference")
                if isinstance(pref, dict) and pref.get("Enabled", True) not in (False, "false") and not pref.get("Role"):
                    deploy_preferences.append((lid, res))
            else:
                self.state_machine(lid, res, props)
        if deploy_preferences:
            self.codedeploy_role(deploy_preferences)
        return self.generated

    def from_transform(self, transformed: TransformRoles) -> None:
        """Roles and policies the translator's own transform generates that the expansion above lacks
        (GraphQLApi data sources, ScheduleV2 events, connectors' policies)."""
        if transformed.error:
            self.source.stats["transform errors"] += 1
            if any(e.file == self.file for e in self.out.errors):
                return  # already reported as invalid; the translator says the same
            self.out.note(self.file, self.doc.line_of("Transform") if isinstance(self.doc, LDict) else None,
                          f"the SAM transform (aws-sam-translator) rejects this template: {transformed.error}; "
                          "only the roles of its Functions and StateMachines are read")
            return
        for lid, resource in transformed.resources.items():
            if lid in self.generated:
                continue
            owner = max((o for o in self.tpl.resources if lid.startswith(o)), key=len, default=None)
            line = _line_for(self.tpl.resources[owner], lid[len(owner):]) if owner else \
                (self.doc.line_of("Resources") if isinstance(self.doc, LDict) else None)  # an implicit API's
            self.generated[lid] = _relined(resource, line)
            if resource.get("Type") == "AWS::IAM::Role":
                self.aliases.setdefault(lid, []).append(owner or lid)
                self.source.stats["roles from the transform"] += 1

    # -- helpers -------------------------------------------------------------
    def present(self, props: dict, key: str):
        """The property's value after conditions, or None when absent or `AWS::NoValue`."""
        if key not in props:
            return None
        resolved = self.tpl.resolve(LDict({key: props[key]}))
        return resolved.get(key)

    def role_resource(self, role_id: str, res: dict, owner: str, managed: list, policies: list, props: dict,
                      line: int | None) -> None:
        role_props = {"ManagedPolicyArns": LList(managed, line=line), "Policies": LList(policies, line=line)}
        if "RolePath" in props:
            role_props["Path"] = props["RolePath"]
        resource = {"Type": "AWS::IAM::Role", "Properties": _ldict(role_props, line)}
        if "Condition" in res:
            resource["Condition"] = res["Condition"]
        self.generated[role_id] = _ldict(resource, line)
        self.aliases.setdefault(role_id, []).append(owner)
        self.source.stats["generated roles"] += 1

    # -- AWS::Serverless::Function -------------------------------------------
    def function(self, lid: str, res: dict, props: dict) -> None:
        if self.present(props, "Role") is not None:
            return  # SAM uses the given role and ignores Policies
        line = line_of(res)
        with _partition() as arns:
            from samtranslator.model.xray_utils import get_xray_managed_policy_name
            basic = ("service-role/AWSLambdaBasicDurableExecutionRolePolicy" if self.present(props, "DurableConfig")
                     else "service-role/AWSLambdaBasicExecutionRole")
            managed: list = [arns.generate_aws_managed_policy_arn(basic)]
            tracing = self.present(props, "Tracing")
            if tracing is not None and tracing != "Disabled":  # as the translator: any value but Disabled
                managed.append(arns.generate_aws_managed_policy_arn(get_xray_managed_policy_name()))
            if self.present(props, "VpcConfig") is not None:
                managed.append(arns.generate_aws_managed_policy_arn("service-role/AWSLambdaVPCAccessExecutionRole"))
            role_id = lid + "Role"
            policies: list = []
            self.policies(role_id, props.get("Policies"), managed, policies, line)
            self.dead_letter_queue(lid, props, policies, line)
            self.event_invoke_destinations(lid, props, policies, line)
            self.pull_events(lid, props, managed, policies, line)
        self.role_resource(role_id, res, lid, managed, policies, props, line)

    def dead_letter_queue(self, lid: str, props: dict, policies: list, line) -> None:
        from samtranslator.model.iam import IAMRolePolicies
        from samtranslator.model.sam_resources import SamFunction
        dlq = self.present(props, "DeadLetterQueue")
        if dlq is None:
            return
        dlq_type = dlq.get("Type") if isinstance(dlq, dict) else None
        action = SamFunction.dead_letter_queue_policy_actions.get(dlq_type) if isinstance(dlq_type, str) else None
        if action is None or "TargetArn" not in dlq:
            self.out.error(self.file, line_of(dlq, line), f"{lid}: DeadLetterQueue needs Type (SQS or SNS) and TargetArn")
            return
        policies.append(_relined(IAMRolePolicies.dead_letter_queue_policy(action, dlq["TargetArn"]), line_of(dlq, line)))

    def event_invoke_destinations(self, lid: str, props: dict, policies: list, line) -> None:
        from samtranslator.model.iam import IAMRolePolicies
        config = self.present(props, "EventInvokeConfig")
        dests = config.get("DestinationConfig") if isinstance(config, dict) else None
        if not isinstance(dests, dict):
            return
        builders = {"SQS": IAMRolePolicies.sqs_send_message_role_policy, "SNS": IAMRolePolicies.sns_publish_role_policy,
                    "EventBridge": IAMRolePolicies.event_bus_put_events_role_policy,
                    "Lambda": IAMRolePolicies.lambda_invoke_function_role_policy,
                    "S3Bucket": IAMRolePolicies.s3_send_event_payload_role_policy}
        for when in ("OnSuccess", "OnFailure"):
            dest = dests.get(when)
            if not isinstance(dest, dict) or dest.get("Type") not in builders:
                continue
            dline = line_of(dest, line)
            if "Destination" not in dest:
                # SAM creates the queue or topic itself; its ARN is known only after deploy
                self.out.note(self.file, dline, f"{lid}: EventInvokeConfig {when} destination is created by SAM; "
                                                "its ARN is not in the template", lid + "Role")
                continue
            policy = builders[dest["Type"]](dest["Destination"], f"{lid}EventInvokeConfig{when}")
            policies.append(_relined(policy, dline))

    def pull_events(self, lid: str, props: dict, managed: list, policies: list, line) -> None:
        """Event sources that SAM turns into permissions on the execution role (SQS, Kinesis, MQ, ...)."""
        events = props.get("Events")
        if not isinstance(events, dict):
            return
        from samtranslator.model import ResourceTypeResolver
        from samtranslator.model.eventsources import pull
        resolver = ResourceTypeResolver(pull)
        for eid, event in events.items():
            if not isinstance(event, dict) or not resolver.can_resolve(event):
                continue
            eline = line_of(event, line)
            try:
                source = resolver.resolve_resource_type(event).from_dict(lid + str(eid), event, str(eid))
                arn = source.get_policy_arn()
                statements = source.get_policy_statements(None)
            except Exception as e:  # noqa: BLE001 - the translator's validation of the event
                self.out.error(self.file, eline, f"{lid}: event {eid}: {getattr(e, 'message', e)}")
                continue
            if arn and arn not in managed:
                managed.append(arn)
            for policy in statements or []:
                policies.append(_relined(policy, eline))
            self.pull_event_destination(lid + str(eid), event, policies, eline)

    def pull_event_destination(self, event_id: str, event: dict, policies: list, line) -> None:
        from samtranslator.model.iam import IAMRolePolicies
        props = event.get("Properties")
        dest = props.get("DestinationConfig") if isinstance(props, dict) else None
        on_failure = dest.get("OnFailure") if isinstance(dest, dict) else None
        if not isinstance(on_failure, dict):
            return
        builders = {"SQS": IAMRolePolicies.sqs_send_message_role_policy, "SNS": IAMRolePolicies.sns_publish_role_policy,
                    "S3": IAMRolePolicies.s3_send_event_payload_role_policy}
        build = builders.get(on_failure.get("Type"))
        if build is not None:
            policies.append(_relined(build(on_failure.get("Destination"), event_id), line_of(on_failure, line)))

    # -- Policies: managed names/ARNs, documents, policy templates, Fn::If -----
    def policies(self, role_id: str, value, managed: list, policies: list, line) -> None:
        if value is None:
            return
        entries = value if isinstance(value, list) else [value]
        for index, entry in enumerate(entries):
            eline = line_of(entry, line_of(value, line))
            kind, converted = self.policy_entry(role_id, entry, eline)
            if kind == "managed":
                if converted not in managed:
                    managed.append(converted)
            elif kind == "document":
                policies.append(_ldict({"PolicyName": f"{role_id}Policy{index}", "PolicyDocument": converted}, eline))

    def policy_entry(self, role_id: str, entry, line):
        """('managed', arn) | ('document', policy document) | (None, None) after reporting it."""
        if isinstance(entry, str):
            return "managed", managed_policy_names().get(entry, entry)
        if isinstance(entry, dict) and "Fn::If" in entry and len(entry) == 1:
            return self.policy_if(role_id, entry, line)
        if is_intrinsic(entry):
            return "managed", entry
        if isinstance(entry, dict) and "Statement" in entry:
            return "document", entry
        if isinstance(entry, dict) and len(entry) == 1:
            return self.policy_template(role_id, entry, line)
        self.out.error(self.file, line, f"{role_id}: a Policies entry must be a managed policy, a policy document "
                                        "or a SAM policy template")
        return None, None

    def policy_if(self, role_id: str, entry: dict, line):
        args = entry["Fn::If"]
        if not (isinstance(args, list) and len(args) == 3):
            self.out.error(self.file, line, f"{role_id}: Fn::If needs [condition, then, else]")
            return None, None
        branches, kinds = [], set()
        for branch in args[1:]:
            if branch == NO_VALUE:
                branches.append(branch)
                continue
            kind, converted = self.policy_entry(role_id, branch, line_of(branch, line))
            if kind is None:
                return None, None
            kinds.add(kind)
            branches.append(converted)
        if len(kinds) > 1:
            self.out.error(self.file, line, f"{role_id}: SAM does not allow a managed policy and a document "
                                            "in the same Fn::If")
            return None, None
        return (kinds.pop() if kinds else "managed"), _ldict({"Fn::If": [args[0], *branches]}, line)

    def policy_template(self, role_id: str, entry: dict, line):
        (name, params), = entry.items()
        processor = policy_templates()
        if not processor.has(name):
            self.out.error(self.file, line, f"{role_id}: {name} is neither a policy document nor a SAM policy "
                                            "template known to aws-sam-translator")
            self.source.stats["policy templates unknown"] += 1
            return None, None
        if not isinstance(params, dict):
            self.out.error(self.file, line, f"{role_id}: {name} takes a mapping of parameters ({{}} when none)")
            self.source.stats["policy templates invalid"] += 1
            return None, None
        try:
            document = processor.convert(name, params)
        except Exception as e:  # noqa: BLE001 - InsufficientParameterValues and the like: the user's input
            self.out.error(self.file, line, f"{role_id}: {name}: {getattr(e, 'message', e)}")
            self.source.stats["policy templates invalid"] += 1
            return None, None
        if _has_unknown_parameter(self.tpl, params):
            self.source.stats["policy templates with unresolved parameters"] += 1
        else:
            self.source.stats["policy templates expanded"] += 1
        return "document", _relined(document, line)

    # -- AWS::Serverless::StateMachine ---------------------------------------
    def state_machine(self, lid: str, res: dict, props: dict) -> None:
        line = line_of(res)
        if self.present(props, "Role") is None:
            managed: list = []
            tracing = self.present(props, "Tracing")
            with _partition() as arns:
                from samtranslator.model.xray_utils import get_xray_managed_policy_name
                if isinstance(tracing, dict) and tracing.get("Enabled") is True:
                    managed.append(arns.generate_aws_managed_policy_arn(get_xray_managed_policy_name()))
            policies: list = []
            self.policies(lid + "Role", props.get("Policies"), managed, policies, line)
            self.role_resource(lid + "Role", res, lid, managed, policies, props, line)
        self.state_machine_event_roles(lid, res, props)

    def state_machine_event_roles(self, lid: str, res: dict, props: dict) -> None:
        """Schedule, CloudWatchEvent/EventBridgeRule and Api events get a role that may start the execution."""
        from samtranslator.model.iam import IAMRolePolicies
        from samtranslator.translator.logical_id_generator import LogicalIdGenerator
        events = props.get("Events")
        if not isinstance(events, dict):
            return
        for eid, event in events.items():
            if not isinstance(event, dict) or event.get("Type") not in ("Schedule", "CloudWatchEvent",
                                                                       "EventBridgeRule", "Api"):
                continue
            eprops = event.get("Properties") if isinstance(event.get("Properties"), dict) else {}
            if event["Type"] in ("Schedule", "CloudWatchEvent", "EventBridgeRule") and "RoleArn" in eprops:
                continue
            role_id = LogicalIdGenerator(lid + str(eid) + "Role", "").gen()
            eline = line_of(event, line_of(res))
            policy = IAMRolePolicies.step_functions_start_execution_role_policy({"Ref": lid}, role_id)
            self.role_resource(role_id, res, f"{lid}.{eid}", [], [_relined(policy, eline)], {}, eline)

    # -- DeploymentPreference -------------------------------------------------
    def codedeploy_role(self, functions: list) -> None:
        from samtranslator.model.preferences.deployment_preference_collection import CODE_DEPLOY_SERVICE_ROLE_LOGICAL_ID
        with _partition() as arns:
            arn = arns.generate_aws_managed_policy_arn("service-role/AWSCodeDeployRoleForLambda")
        lid, res = functions[0]
        conditions = {r.get("Condition") for _, r in functions}
        owner = {"Condition": conditions.pop()} if len(conditions) == 1 and None not in conditions else {}
        self.role_resource(CODE_DEPLOY_SERVICE_ROLE_LOGICAL_ID, owner, "CodeDeploy", [arn], [], {}, line_of(res))


def _line_for(resource, rest: str) -> int | None:
    """The line of the key of `resource` that a generated logical id continues with (`<Api><DataSource>Role`,
    `<Function><Event>Role`): the longest such key, else the resource's own line."""
    best, best_len = line_of(resource), 0
    stack = [resource]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                if isinstance(k, str) and len(k) > best_len and rest.startswith(k):
                    best, best_len = getattr(node, "key_lines", {}).get(k) or line_of(v, best), len(k)
                stack.append(v)
        elif isinstance(node, list):
            stack.extend(node)
    return best


def _has_unknown_parameter(tpl: Template, params: dict) -> bool:
    resolved = tpl.resolve(params)
    stack = [resolved]
    while stack:
        v = stack.pop()
        if isinstance(v, Unknown):
            return True
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False
