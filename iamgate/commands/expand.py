from __future__ import annotations

import sys

from ..escape import terminal
from ..reference.catalog import load_catalog
from . import COMMANDS, Command


@COMMANDS.register
class Expand(Command):
    name = "expand"
    help = "show what IAM action patterns expand to in the current catalog"

    def configure(self, p) -> None:
        p.add_argument("patterns", nargs="+", metavar="PATTERN", help="for example s3:Get* or ec2:Describe?pc*")
        p.add_argument("--not-action", action="store_true", help="expand as NotAction (catalog minus the patterns)")

    def run(self, args) -> int:
        catalog = load_catalog()
        exp = catalog.expand_not_actions(args.patterns) if args.not_action else catalog.expand_all(args.patterns)
        for a in sorted(exp.actions):
            print(f"{catalog.canonical(a)}\t{catalog.access_level(a)}")
        for u in exp.unknown:
            print(f"iamgate: unknown: {terminal(u)} matches no action in catalog {catalog.version}", file=sys.stderr)
        return 2 if exp.unknown and not exp.actions else 0
