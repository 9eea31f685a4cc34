"""Render the PR comment that iamgate writes for the bundled example, as a pull request would see it.

The example (examples/) is copied into a throw-away git repository and committed as the base; a
small pull request is then applied on top (it adds two grants and removes one that is in use),
and the comment is rendered in diff-only mode, exactly as the action does. The result replaces
the part of docs/github-action.md and README.md between the `example-comment` markers (or goes to stdout).

    python scripts/render_example_comment.py [--stdout]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "github-action.md"
DOCS = (DOC, ROOT / "README.md")  # both show the rendered comment
START, END = "<!-- example-comment:start -->", "<!-- example-comment:end -->"
# The example pull request: (file, text before, text after).
PR_EDITS = [("examples/infra/orders.yaml", "Action: [dynamodb:Scan, dynamodb:Query, dynamodb:DescribeTable]",
             "Action: [dynamodb:Scan, dynamodb:DescribeTable, dynamodb:BatchWriteItem]"),
            ("examples/infra/orders.yaml", '"s3:PutBucketPolicy"]', '"s3:PutBucketPolicy", "s3:PutBucketAcl"]')]
GIT_ENV = {"GIT_AUTHOR_NAME": "example", "GIT_AUTHOR_EMAIL": "example@example.com", "GIT_COMMITTER_NAME": "example",
           "GIT_COMMITTER_EMAIL": "example@example.com", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, env={**os.environ, **GIT_ENV}, check=True, capture_output=True)


def render() -> str:
    from iamgate import config as config_mod
    from iamgate.formats.comment import comment_body, marker, title
    from iamgate.diff import compare_with_base
    from iamgate.pipeline import analyse

    paths, config = ["examples/infra"], "examples/iamgate.yml"
    with tempfile.TemporaryDirectory(prefix="iamgate-example-") as tmp:
        repo = Path(tmp)
        shutil.copytree(ROOT / "examples", repo / "examples", ignore=shutil.ignore_patterns("workflows"))
        git(repo, "init", "-q", "-b", "main")
        git(repo, "add", ".")
        git(repo, "commit", "-q", "-m", "base")
        applied = 0
        for file, before, after in PR_EDITS:
            target = repo / file
            text = target.read_text()
            if before in text:
                target.write_text(text.replace(before, after, 1))
                applied += 1
        if applied != len(PR_EDITS):
            print("render_example_comment: the example changed; rendering without the pull request's edits",
                  file=sys.stderr)
        cwd = os.getcwd()
        os.chdir(repo)
        try:
            cfg = config_mod.load(config)

            def run_on(p, base=None):
                return analyse(p, ["examples/baselines"], cfg, base=base)

            report = compare_with_base(run_on(paths), "main", paths, run_on)
            return comment_body(report, marker(config, paths), title(config, paths),
                                "https://github.com/OWNER/REPO/actions/runs/RUN_ID")
        finally:
            os.chdir(cwd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stdout", action="store_true", help="print the comment instead of updating the doc")
    args = parser.parse_args(argv)
    body = render()
    if args.stdout:
        sys.stdout.write(body)
        return 0
    for doc_path in DOCS:
        doc = doc_path.read_text(encoding="utf-8")
        head, _, rest = doc.partition(START)
        _, _, tail = rest.partition(END)
        if not rest:
            print(f"{doc_path}: no {START} marker", file=sys.stderr)
            return 2
        doc_path.write_text(f"{head}{START}\n\n{body}\n{END}{tail}", encoding="utf-8")
        print(f"updated {doc_path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
