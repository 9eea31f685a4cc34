"""Stage 3: a principal's grants and its baseline -> a verdict for every granted action.

`grants` expands what the policies allow (NotAction, unconditional Deny); `verdicts` decides, in
the README's order and per usage source from AWS's per-action data, `used`, `unused`,
`unobservable`, `unknown` or `no-usage-data` for one baseline; `evidence` judges from all the evidence
(deployments, grant history, observation intervals): `new`, `too_recent`, max-idle, the most cautious
verdict across deployments; `unused_access` holds the rules for baselines from an unused-access
analyzer; `risk` and `severity` rank what is unused or new.
"""
