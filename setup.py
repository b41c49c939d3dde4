"""Build hook: a wheel carries the project files read at run time from outside the `coherex` package.

They stay at the top of the repository (the agreed layout; `supabase db push` reads the
migrations there) and are copied into `coherex/_bundled/` of the build only, with the same
relative paths, so no second copy is kept in the tree. coherex/resources.py reads them from
there in a wheel and in place from a source tree or an editable install. The rest of the
configuration is in pyproject.toml; MANIFEST.in puts the same files into an sdist.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
#: what coherex.resources.path() may be asked for (relative to the repository root)
BUNDLED = [
    "prompts",
    "templates",
    "supabase/migrations",
    "chat_app.py",
    "dashboard_app.py",
    "chainlit.md",
    ".chainlit",
    "public",
    ".streamlit",
]
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".files")


class BuildWithBundle(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install reads the files in place
            return
        target = Path(self.build_lib) / "coherex" / "_bundled"
        for name in BUNDLED:
            source, dest = HERE / name, target / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            if source.is_dir():
                shutil.copytree(source, dest, ignore=_SKIP, dirs_exist_ok=True)
            else:
                shutil.copy2(source, dest)


setup(cmdclass={"build_py": BuildWithBundle})
