"""CloudFormation and what compiles to it: `evaluator` resolves a template (parameters,
`Conditions`, every intrinsic function); `templates`, `sam` (with the translator's own
`sam_transform`) and `cdk` are the source kinds built on it."""
