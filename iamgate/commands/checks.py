from __future__ import annotations

from . import COMMANDS, Command


@COMMANDS.register
class ListChecks(Command):
    name = "checks"
    help = "list the checks with their default severity"

    def configure(self, p) -> None:
        pass

    def run(self, args) -> int:
        from iamgate.checks import CHECKS
        for name, cls in sorted(CHECKS.all().items()):
            print(f"{name:<22} {cls.severity:<9} {cls.title}\n{'':<32} {cls.docs}\n")
        return 0
