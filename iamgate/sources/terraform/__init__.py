"""Terraform, read and never run: `hcl` parses with python-hcl2, `functions` and `values` evaluate
expressions, `iam` turns resources into principals and policies, `downloads` reads the modules
`terraform init` fetched; `configuration` (`.tf` folders) and `plan` (`terraform show -json`) are
the source kinds."""
