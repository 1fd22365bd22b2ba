#!/usr/bin/env python3
"""Checks the documents against the repository, and exits 1 on anything broken:

- every relative link in README.md, ARCHITECTURE.md, BENCHMARKS.md and docs/*.md names a file
  that exists and, with `#anchor`, a heading of that file (GitHub's anchor rules);
- every test ARCHITECTURE.md and docs/*.md cite exists. A test is cited as an identifier in
  backticks whose last segment is a snake_case name with at least 4 underscores, or that is in a
  `tests` module: bare (`a_run_books_its_calls_before_making_them`) or with its module path
  (`delivery::a_redelivered_hashtags_event_keeps_every_post_and_the_first_capture`,
  `pager::lane::tests::a_shard_spends_its_share`). `fn <name>` must occur in src/, tests/ or
  testkit/; with a module path, in that module's file (`tests/it/delivery.rs`,
  `src/pager/lane.rs`, `src/state/mod.rs`, ...), so a test cited under the wrong module fails too.

Prints what it checked and each problem with its file and line."""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
# An inline code span holding a Rust path of lower-case segments, or a bare name.
CODE = re.compile(r"`([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)`")
# Where tests live: the integration tests, the library's unit tests, the test kit.
TEST_ROOTS = ["src", "tests", "testkit"]


def prose(path):
    """The file's lines outside fenced code blocks, with their line numbers."""
    fenced = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def anchors(path):
    """The anchors GitHub gives the file's headings: lower case, punctuation dropped, spaces to
    hyphens, a repeated one numbered."""
    seen = {}
    out = set()
    for _, line in prose(path):
        m = re.match(r"^#{1,6} +(.*?) *#*$", line)
        if not m:
            continue
        slug = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def check_links(files):
    """Every relative link's file and anchor: (links checked, problems)."""
    broken, checked = [], 0
    for source in files:
        for number, line in prose(source):
            for target in LINK.findall(line):
                if re.match(r"^[a-z]+:", target):
                    continue
                checked += 1
                name, _, anchor = target.partition("#")
                dest = (source.parent / name).resolve() if name else source
                where = f"{source.relative_to(ROOT)}:{number}: {target}"
                if not dest.exists():
                    broken.append(f"{where}: no such file")
                elif anchor and (dest.suffix != ".md" or anchor not in anchors(dest)):
                    broken.append(f"{where}: no heading #{anchor} in {dest.relative_to(ROOT)}")
    return checked, broken


def test_functions():
    """Every `fn name` in the test roots: name -> the files defining it."""
    defined = {}
    for root in TEST_ROOTS:
        for path in sorted((ROOT / root).rglob("*.rs")):
            text = path.read_text(encoding="utf-8")
            for name in re.findall(r"\bfn\s+([a-z_][a-z0-9_]*)\s*[(<]", text):
                defined.setdefault(name, set()).add(path.relative_to(ROOT).as_posix())
    return defined


def module_files(modules):
    """The files a module path can name: an integration test module (`tests/it/`), a library
    module (`src/`), or a test kit module (`testkit/src/`)."""
    rel = "/".join(modules)
    return {
        f"tests/it/{rel}.rs",
        f"src/{rel}.rs",
        f"src/{rel}/mod.rs",
        f"testkit/src/{rel}.rs",
        f"testkit/src/{rel}/mod.rs",
    }


def is_test_name(path):
    """A sentence-like snake_case name, or any name in a unit test module (`x::tests::name`)."""
    *modules, name = path.split("::")
    return name.count("_") >= 4 or "tests" in modules


def check_tests(files):
    """Every cited test exists, in the module it is cited under: (citations, distinct, problems)."""
    defined = test_functions()
    missing, cited, names = [], 0, set()
    for source in files:
        for number, line in prose(source):
            for path in CODE.findall(line):
                if not is_test_name(path):
                    continue
                cited += 1
                names.add(path)
                *modules, name = path.split("::")
                modules = [m for m in modules if m != "tests"]
                where = f"{source.relative_to(ROOT)}:{number}: `{path}`"
                found = defined.get(name, set())
                if not found:
                    missing.append(f"{where}: no `fn {name}` in {', '.join(TEST_ROOTS)}")
                elif modules and not found & module_files(modules):
                    missing.append(
                        f"{where}: `fn {name}` is in {', '.join(sorted(found))}, "
                        f"not in module {'::'.join(modules)}"
                    )
    return cited, len(names), missing


def main():
    docs = sorted((ROOT / "docs").glob("*.md"))
    files = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", ROOT / "BENCHMARKS.md"] + docs
    checked, broken = check_links(files)
    cited, distinct, missing = check_tests([ROOT / "ARCHITECTURE.md"] + docs)
    for problem in broken + missing:
        print(problem)
    print(f"{checked} relative links in {len(files)} files, {len(broken)} broken")
    print(
        f"{cited} test citations ({distinct} distinct tests) in {1 + len(docs)} files, "
        f"{len(missing)} missing"
    )
    return 1 if broken or missing else 0


if __name__ == "__main__":
    sys.exit(main())
