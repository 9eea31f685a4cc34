"""Raw IAM policy documents (`{"Version": ..., "Statement": [...]}`) in JSON files."""
from __future__ import annotations

from ..model import SourceResult
from . import SOURCES, Source, Workspace
from .collector import Collector
from .loaders import line_of
from .policy_document import looks_like_policy


@SOURCES.register
class PolicyJsonSource(Source):
    name = "policy-json"
    priority = 90
    description = "plain IAM policy documents; the principal comes from the config's principal mapping"

    def collect(self, workspace: Workspace) -> SourceResult:
        out = Collector(self.name, workspace.options.managed_policy_dir)
        for path in workspace.unclaimed({".json"}):
            doc = workspace.read_claimed(path, looks_like_policy, lambda head: '"Statement"' in head, out.error)
            if doc is None:
                continue
            file = workspace.rel(path)
            draft = out.principal(file, "policy", location=None)
            policy = out.policy(path.stem, doc, file, line_of(doc, 1), file)
            draft.policies.append(policy)
            draft.location = policy.location
        return out.result()
