"""The project files Coherex reads at run time that live outside the `coherex` package: prompts/,
templates/, supabase/migrations/, the Chainlit and Streamlit entry points and their config
(chat_app.py, dashboard_app.py, .chainlit/, public/, chainlit.md, .streamlit/).

They stay at the top of the repository (the agreed layout; `supabase db push` reads the migrations
there). A wheel carries them under `coherex/_bundled/`, with the same relative paths, copied by the
build (setup.py's `build_py`); a source tree or an editable install reads them in place. Every
read goes through `path()`, so both work alike.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

from coherex.errors import BackendError

#: the folder inside the installed package that holds the bundled files (see setup.py)
BUNDLE = "_bundled"


@cache
def root() -> Path:
    """The folder holding prompts/, templates/, supabase/, chat_app.py, …: the bundle of an
    installed wheel, else the source tree the package is imported from."""
    package = files("coherex")
    if not isinstance(package, Path):  # only a zip import gives something else
        raise BackendError(
            f"Coherex is imported from {package}, which is not a folder on disk; "
            "install it with pip (a wheel or `pip install -e .`), not as a zip"
        )
    bundled = package / BUNDLE
    return bundled if bundled.is_dir() else package.parent


def path(*parts: str) -> Path:
    """A bundled file or folder, e.g. `path("supabase", "migrations")`."""
    return root().joinpath(*parts)
