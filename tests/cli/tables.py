"""Reading the tables the commands print (rich, plain text, wide enough not to wrap)."""

from __future__ import annotations


def rows(text: str, title: str) -> list[list[str]]:
    """The body rows of the table titled `title`, as lists of cells (the header's
    borders are heavy, ┃, the body's light, │)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == title)
    out = []
    for line in lines[start + 1 :]:
        if line.startswith("└"):
            break
        if line.startswith("│"):
            out.append([cell.strip() for cell in line.strip("│").split("│")])
    return out
