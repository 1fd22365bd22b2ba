#!/usr/bin/env python3
"""Checks that every relative link in README.md, ARCHITECTURE.md, BENCHMARKS.md and docs/*.md
names a file that exists and, with `#anchor`, a heading of that file (GitHub's anchor rules).
Prints each broken link and exits 1 if there is one."""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def prose(path):
    """The file's lines outside fenced code blocks."""
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            yield line


def anchors(path):
    """The anchors GitHub gives the file's headings: lower case, punctuation dropped, spaces to
    hyphens, a repeated one numbered."""
    seen = {}
    out = set()
    for line in prose(path):
        m = re.match(r"^#{1,6} +(.*?) *#*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def main():
    files = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", ROOT / "BENCHMARKS.md"]
    files += sorted((ROOT / "docs").glob("*.md"))
    broken, checked = [], 0
    for source in files:
        for line in prose(source):
            for target in LINK.findall(line):
                if re.match(r"^[a-z]+:", target):
                    continue
                checked += 1
                name, _, anchor = target.partition("#")
                dest = (source.parent / name).resolve() if name else source
                where = f"{source.relative_to(ROOT)}: {target}"
                if not dest.exists():
                    broken.append(f"{where}: no such file")
                elif anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
                    broken.append(f"{where}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    for b in broken:
        print(b)
    print(f"{checked} relative links in {len(files)} files, {len(broken)} broken")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
