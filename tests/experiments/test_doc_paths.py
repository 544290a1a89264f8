"""Links in the docs lead somewhere. Every repository path the tracked Markdown names in code
(`experiments/...`, `world_models/...`, ...) exists, so a renamed or deleted file cannot leave
a doc pointing at nothing; paths under the ignored `data/` and `runs/` are made by commands and
are not checked, nor are paths with a placeholder (`seed_S`, `NAME`). And every in-page link
of the README names one of its headings."""

from __future__ import annotations

import re
from pathlib import Path

from tests.markdown import tracked_markdown

ROOT = Path(__file__).resolve().parents[2]
NAMED_PATH = re.compile(r"`((?:experiments|world_models|policies|wfm_sim|envs|tests)/[\w./*-]+)`")
PLACEHOLDER = re.compile(r"(?:^|[/_])[A-Z]+(?:/|$)")  # an all-capitals segment: seed_S/, NAME


def test_every_path_the_docs_name_exists() -> None:
    missing = []
    for document in tracked_markdown():
        for path in set(NAMED_PATH.findall(document.read_text())):
            if not PLACEHOLDER.search(path) and not any(ROOT.glob(path.rstrip("/"))):
                missing.append(f"{document.relative_to(ROOT)}: {path}")
    assert not missing, "docs name paths that do not exist:\n" + "\n".join(missing)


def test_every_in_page_link_of_the_readme_names_a_heading() -> None:
    text = (ROOT / "README.md").read_text()
    slugs = {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")  # GitHub's anchors
        for heading in re.findall(r"^#+ (.+)$", text, re.M)
    }
    links = re.findall(r"\]\(#([^)]+)\)", text)
    assert links, "the README's contents line links its sections"
    assert not [link for link in links if link not in slugs]
