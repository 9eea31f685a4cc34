"""IaC that only running code can read: listed as skipped, and an error, never silently passed.

A Serverless Framework service written as `serverless.ts`/`.js`/`.mjs`/`.cjs` is a program that returns
the service definition (https://www.serverless.com/framework/docs/providers/aws/guide/intro, "serverless.ts");
every such service declares IAM (the Lambda role the framework generates). iamgate never runs code from
the scanned repository, so it cannot read it: the file is listed under `skipped` with the reason and is a
scan error (the gate's result is `error`, exit 2) unless `.iamgate.yml` lists it under `exclude:`.
"""
from __future__ import annotations

from ..model import ScanError, Skipped, SourceResult
from . import SOURCES, Source, Workspace

CODE_SERVICE_FILES = ("serverless.ts", "serverless.js", "serverless.mjs", "serverless.cjs")
REASON = ("a Serverless Framework service written as code: iamgate would have to run it to read its IAM, and "
          "never runs code from the repository; write it as serverless.yml, or list it under `exclude:` in "
          ".iamgate.yml to accept that it is not checked")


@SOURCES.register
class CodeDefinedSource(Source):
    name = "code-defined"
    priority = 990  # after every source that reads files
    description = "IaC defined by running code (serverless.ts/.js): listed as skipped and an error"

    def collect(self, workspace: Workspace) -> SourceResult:
        skipped, errors = [], []
        for path in workspace.unclaimed({".ts", ".js", ".mjs", ".cjs"}):
            if path.name.lower() not in CODE_SERVICE_FILES:
                continue
            file = workspace.rel(path)
            workspace.claim(path)
            skipped.append(Skipped(file, REASON))
            errors.append(ScanError(file, None, f"not read: {REASON}"))
        return SourceResult(errors=tuple(errors), skipped=tuple(skipped))
