"""The SAM transform itself (aws-sam-translator), run offline, as the list of roles a template produces.

The SAM source expands Functions and StateMachines itself, with lines. The translator's own
transform is the authority on which `AWS::IAM::Role` resources exist after deployment (GraphQLApi
data sources, ScheduleV2 events, connectors, ...): a role it produces that the expansion lacks is
taken from its output. Offline: the managed-policy names come from the translator's bundled map,
the region is fixed to us-east-1 (the `aws` partition), and local code paths are replaced by
placeholders the way `sam package` replaces them by S3 locations.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from types import SimpleNamespace

REGION = "us-east-1"
_URI_KEYS = {"CodeUri", "DefinitionUri", "ContentUri", "SchemaUri"}
_PLACEHOLDER_IMAGE = "111122223333.dkr.ecr.us-east-1.amazonaws.com/iamgate-placeholder:latest"


IAM_TYPES = ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")


@dataclass(frozen=True)
class TransformRoles:
    resources: dict = field(default_factory=dict)  # logical id -> a generated role or policy resource
    error: str | None = None  # the translator rejected the template

    @property
    def roles(self) -> dict:
        return {lid: r for lid, r in self.resources.items() if r.get("Type") == "AWS::IAM::Role"}


def _plain(value, key: str | None = None):
    """A plain copy of the template, with local artifact paths as S3 placeholders."""
    if isinstance(value, dict):
        return {str(k): _plain(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if key in _URI_KEYS and isinstance(value, str) and not value.startswith("s3://"):
        return "s3://iamgate-placeholder/" + (value.strip("./") or "artifact")
    return value


def packaged(doc) -> dict:
    template = _plain(doc)
    resources = template.get("Resources") if isinstance(template.get("Resources"), dict) else {}
    globals_ = template.get("Globals", {}).get("Function") if isinstance(template.get("Globals"), dict) else None
    global_code = isinstance(globals_, dict) and ("CodeUri" in globals_ or "InlineCode" in globals_)
    for res in resources.values():
        props = res.get("Properties") if isinstance(res, dict) else None
        if not isinstance(props, dict):
            continue
        rtype = res.get("Type")
        if rtype == "AWS::Serverless::Function" and props.get("PackageType") == "Image":
            if ".dkr.ecr." not in str(props.get("ImageUri", "")):
                props["ImageUri"] = _PLACEHOLDER_IMAGE  # built locally by `sam build`: any registry image will do
        elif rtype == "AWS::Serverless::Function" and not global_code and "CodeUri" not in props \
                and "InlineCode" not in props:
            props["CodeUri"] = "s3://iamgate-placeholder/artifact"  # `sam build` packages the template's folder
        elif rtype == "AWS::Serverless::Application":
            # a nested stack: its roles are not in this template, and a Serverless Application Repository
            # location would make the translator call AWS
            props["Location"] = "https://s3.amazonaws.com/iamgate-placeholder/application.yaml"
        body = props.get("DefinitionBody")
        if rtype in ("AWS::Serverless::Api", "AWS::Serverless::HttpApi") and isinstance(body, dict) \
                and "Fn::Transform" in body:  # an AWS::Include of a file CloudFormation reads at deploy
            props["DefinitionBody"] = {"swagger": "2.0", "info": {"title": "iamgate-placeholder"}, "paths": {}} \
                if rtype == "AWS::Serverless::Api" else {"openapi": "3.0.1", "info": {"title": "placeholder"},
                                                         "paths": {}}
    return template


@lru_cache(maxsize=1)
def _policy_template_plugin_factory():
    """The translator validates its bundled policy templates on every run (most of its time); once is enough."""
    from samtranslator.plugins.policies.policy_templates_plugin import PolicyTemplatesForResourcePlugin

    from .sam import policy_templates
    return lambda: PolicyTemplatesForResourcePlugin(policy_templates())


@contextmanager
def _offline():
    from samtranslator.translator import translator as module
    from samtranslator.translator.arn_generator import ArnGenerator
    saved = (ArnGenerator.BOTO_SESSION_REGION_NAME, module.make_policy_template_for_function_plugin)
    log = logging.getLogger("samtranslator")
    level = log.level
    log.setLevel(logging.ERROR)  # its feature-toggle and metrics warnings are not the user's concern
    module.make_policy_template_for_function_plugin = _policy_template_plugin_factory()
    try:
        yield
    finally:
        ArnGenerator.BOTO_SESSION_REGION_NAME, module.make_policy_template_for_function_plugin = saved
        log.setLevel(level)


def transform_roles(doc, parameters: dict) -> TransformRoles:
    """The roles and policies the SAM transform generates for this template (not the template's own)."""
    own = set(doc.get("Resources") or {}) if isinstance(doc, dict) else set()
    try:
        out = translate(doc, parameters)
    except Exception as e:  # noqa: BLE001 - InvalidDocumentException and whatever the translator raises
        return TransformRoles(error=_message(e))
    resources = out.get("Resources") if isinstance(out, dict) else None
    return TransformRoles({lid: r for lid, r in (resources or {}).items()
                           if isinstance(r, dict) and r.get("Type") in IAM_TYPES and lid not in own})


def translate(doc, parameters: dict) -> dict:
    """The whole template after the SAM transform, offline; raises what the translator raises."""
    from samtranslator.metrics.metrics import DummyMetricsPublisher, Metrics
    from samtranslator.parser.parser import Parser
    from samtranslator.plugins.application.serverless_app_plugin import ServerlessAppPlugin
    from samtranslator.translator.translator import Translator

    from .sam import managed_policy_names
    template = packaged(doc)  # a fresh copy: the translator changes it in place
    metrics = Metrics("ServerlessTransform", DummyMetricsPublisher())
    try:
        with _offline():
            translator = Translator(None, Parser(), plugins=[ServerlessAppPlugin(sar_client_creator=_no_aws)],
                                    boto_session=SimpleNamespace(region_name=REGION), metrics=metrics)
            return translator.translate(template, parameter_values=dict(parameters),
                                        get_managed_policy_map=managed_policy_names)
    finally:
        metrics.publish()


def _no_aws():
    raise RuntimeError("iamgate does not call the Serverless Application Repository")


def _message(e: Exception) -> str:
    causes = getattr(e, "causes", None)
    if causes:
        return "; ".join(str(getattr(c, "message", c)) for c in causes[:3])
    return str(getattr(e, "message", e)) or type(e).__name__
