"""Beside the pipeline: verdicts -> the least-privilege rewrite in each file's own syntax.

`plan` decides what each statement keeps; `edits` is the text-edit engine; `json`, `yaml` and
`terraform` each edit one syntax; `files` applies a plan to the files (confined to the scanned
paths); `suggestions` turns fixes into pull-request suggestions and diff sections.
"""
