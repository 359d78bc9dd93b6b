"""Copy every results file the README includes (``<!-- results: PATH -->`` blocks) into its block.

    python scripts/sync_readme_results.py            # after an experiment script rewrote docs/results/
    python scripts/sync_readme_results.py --check    # exit 1 if a block differs from its file

No table of its own: the tables come from the experiment scripts (imcflow.report.results).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from imcflow.report.results import readme_blocks, sync_readme


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--readme", default=str(Path(__file__).resolve().parents[1] / "README.md"))
    p.add_argument("--check", action="store_true", help="report differences, change nothing")
    args = p.parse_args(argv)
    readme = Path(args.readme)
    if args.check:
        stale = [path for path, body in readme_blocks(readme.read_text(encoding="utf-8")).items()
                 if (readme.parent / path).read_text(encoding="utf-8") != body]
        for path in stale:
            print(f"stale: {path}")
        return 1 if stale else 0
    for path in sync_readme(readme):
        print(f"updated the README block of {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
