"""What the Action hands back to the workflow: step outputs, the job summary, report files."""
from __future__ import annotations

import uuid


def result(report, code: int) -> str:
    """pass | fail | error: the core's own decision (`Report.result`), which the exit code, the
    headline and every format follow. No report, or an exit code other than the report's own (the
    run ended in error after the report), is `error`: the gate could not decide."""
    if report is None or code != report.exit_code:
        return "error"
    return report.result


def write_outputs(path: str | None, values: dict) -> None:
    if not path:
        return
    with open(path, "a", encoding="utf-8") as f:
        for name, value in values.items():
            delim = f"ghadelimiter_{uuid.uuid4()}"
            f.write(f"{name}<<{delim}\n{value}\n{delim}\n")


def append_file(path: str | None, text: str) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text)


def step_outputs(report, code: int, report_json: str, sarif_file: str | None, comment_file: str) -> dict:
    new = [f for f in report.findings if report.is_new(f)]
    return {"result": result(report, code), "findings": len(report.findings), "new-findings": len(new),
            "unused-actions": sum(len(r.actions("unused")) for r in report.results),
            "report-json": report_json, "sarif-file": sarif_file or "", "comment-file": comment_file}
