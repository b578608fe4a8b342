"""The name a task gets when ``@app.task`` is given none (``module.qualname``),
and the warning when that name may not be the one a worker registers.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path


class TaskNameWarning(UserWarning):
    """A task's default name may not be the one a worker importing its module registers."""


def default_task_name(module: str, qualname: str) -> str:
    """``module.qualname``; for a script run as ``__main__``, the module a worker would import.

    ``python -m pkg.tasks`` has ``__spec__.name``: ``pkg.tasks.<function>``,
    exactly what ``pgbatch worker --app pkg.tasks:app`` registers. ``python
    tasks.py`` has only its file: ``tasks.<function>`` (what ``--app tasks:app``
    registers when run from the script's directory), with a ``TaskNameWarning``
    unless the script is in the current directory.
    Without a file (an interactive session) the name stays ``__main__.<function>``,
    which no worker can run, with a ``TaskNameWarning`` too. ``name=`` avoids all this.
    """
    if module != "__main__":
        return f"{module}.{qualname}"
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    spec_name = getattr(spec, "name", None)
    if isinstance(spec_name, str) and spec_name and not spec_name.endswith("__main__"):
        return f"{spec_name}.{qualname}"
    path = getattr(main, "__file__", None)
    stem = Path(path).stem if isinstance(path, str) else ""
    if stem.isidentifier() and stem != "__main__":
        if Path(path).resolve().parent == Path.cwd().resolve():  # type: ignore[arg-type]
            return f"{stem}.{qualname}"  # what --app <stem>:app from here registers
        warnings.warn(
            f"task {qualname!r} is defined in the script {path} run as __main__: it is named "
            f"{stem}.{qualname!r}, what a worker started with --app {stem}:app from the "
            f"script's directory registers; pass name= to fix the name", TaskNameWarning,
            stacklevel=4)
        return f"{stem}.{qualname}"
    warnings.warn(
        f"task {qualname!r} is defined in __main__ without a file: no worker can import it "
        f"by the name __main__.{qualname}; define it in an importable module or pass name=",
        TaskNameWarning, stacklevel=4)
    return f"__main__.{qualname}"
