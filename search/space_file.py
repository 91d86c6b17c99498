"""Finding and reading a space file: a path, or a file name in the project's `spaces/` folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.errors import UserError
from common.safe_load import load_yaml

SPACES_DIR = Path(__file__).resolve().parent.parent / "spaces"


def resolve_space_path(space: str | Path) -> Path:
    """`cnn2d.yaml` finds `spaces/cnn2d.yaml` from anywhere; an existing path is taken as it is."""
    path = Path(space).expanduser()
    if path.is_file():
        return path.resolve()
    shipped = SPACES_DIR / path.name
    if path.parent == Path(".") and shipped.is_file():
        return shipped
    known = ", ".join(sorted(p.name for p in SPACES_DIR.glob("*.yaml")))
    raise UserError(f"space file {space} not found (a path, or one of spaces/: {known})")


def read_space_file(path: Path) -> dict[str, Any]:
    """The YAML mapping of a space file, read within common.safe_load's limits; syntax errors and
    duplicate keys name the file and line."""
    content = load_yaml(path, "a space file")
    if not isinstance(content, dict):
        raise UserError(f"{path}: expected a mapping of sections (features, model, ...), got {content!r}")
    return content
