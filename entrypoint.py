"""The GitHub Action's entry point (see action.yml): the work is in `iamgate.action`.

action.yml runs it as `python -I entrypoint.py` from the Action's own venv, so the installed
package is imported, never a copy in the Action's folder or one the workspace could shadow.
"""
import sys

from iamgate.action import main

if __name__ == "__main__":
    sys.exit(main())
