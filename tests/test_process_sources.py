"""Processes come only from where the operator says (BATCHJOBS_IMPORTS, the shipped
examples, modules already imported); a process name in a job or a message never makes a
host import a module, and every reason a process is unknown gets its own message."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from batchjobs.definition import job_from_dict
from batchjobs.errors import UnknownProcess
from batchjobs.processes import get_process

PROBE = "PROBE_OUTPUT_OF_A_MODULE_THAT_RAN"


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Factory: write a module with a unique name on sys.path; return its name and path.
    Each module, when imported, drops a marker file next to itself."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("BATCHJOBS_IMPORTS", raising=False)
    made: list[str] = []

    def make(body: str) -> tuple[str, Path]:
        name = f"mod_{uuid.uuid4().hex[:12]}"
        path = tmp_path / f"{name}.py"
        path.write_text(f"open(__file__ + '.imported', 'w').close()\n{body}", encoding="utf-8")
        made.append(name)
        return name, path

    yield make
    for name in made:
        sys.modules.pop(name, None)


def imported(path: Path) -> bool:
    return Path(str(path) + ".imported").exists()


def unknown(name: str) -> str:
    with pytest.raises(UnknownProcess) as info:
        get_process(name, task="T")
    assert (info.value.task, info.value.field, info.value.value) == ("T", "process", name)
    return str(info.value)


def test_validating_this_s_does_not_import_this():
    assert "this" not in sys.modules
    job = job_from_dict({"description": "J", "tasks": [{"name": "A", "process": "this.s"}]})
    with pytest.raises(UnknownProcess) as info:
        job.validate()
    assert "this" not in sys.modules
    assert "searched: batchjobs.examples" in str(info.value)


def test_a_module_named_only_by_a_process_name_is_never_imported(modules):
    name, path = modules("from batchjobs import batchable\n@batchable\ndef run(): pass\n")
    message = unknown(f"{name}.run")
    assert not imported(path)
    assert name not in sys.modules
    assert f"no configured module defines '{name}.run'" in message
    assert "searched: batchjobs.examples" in message and "BATCHJOBS_IMPORTS" in message


def test_a_process_in_a_module_listed_in_batchjobs_imports_is_found(modules, monkeypatch):
    name, path = modules("from batchjobs import batchable\n@batchable\ndef run(): return 7\n")
    monkeypatch.setenv("BATCHJOBS_IMPORTS", f"{name}")
    assert get_process(f"{name}.run").target() == 7
    assert imported(path)


def test_a_listed_module_that_is_not_on_the_path_says_so_with_the_hints(monkeypatch):
    missing = f"absent_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("BATCHJOBS_IMPORTS", f"{missing}.jobs")
    message = unknown(f"{missing}.jobs.run")
    assert f"module '{missing}.jobs' is not found (no module named '{missing}')" in message
    assert "BATCHJOBS_IMPORTS" in message and "PYTHONPATH" in message


def test_a_listed_module_whose_own_import_fails_names_the_exception_file_and_line(
        modules, monkeypatch):
    name, path = modules("import os\nimport no_such_dependency_of_the_module\n")
    monkeypatch.setenv("BATCHJOBS_IMPORTS", name)
    message = unknown(f"{name}.run")
    assert f"module '{name}' raised while importing" in message
    assert "ModuleNotFoundError: No module named 'no_such_dependency_of_the_module'" in message
    assert f"{path}:3" in message
    assert "is not found" not in message


def test_a_listed_module_that_raises_names_the_exception_and_line(modules, monkeypatch):
    name, path = modules("x = 1\nraise RuntimeError('database not configured')\n")
    monkeypatch.setenv("BATCHJOBS_IMPORTS", name)
    message = unknown(f"{name}.run")
    assert f"RuntimeError: database not configured ({path}:3)" in message


def test_a_listed_module_with_a_syntax_error_names_its_line(modules, monkeypatch):
    name, path = modules("def broken(:\n")
    monkeypatch.setenv("BATCHJOBS_IMPORTS", name)
    message = unknown(f"{name}.run")
    assert "SyntaxError" in message and f"({path}:2)" in message


def test_a_function_without_the_decorator_says_it_lacks_batchable(modules, monkeypatch):
    name, _ = modules("def run(): pass\n")
    monkeypatch.setenv("BATCHJOBS_IMPORTS", name)
    message = unknown(f"{name}.run")
    assert f"'{name}.run' exists but is not marked @batchable" in message


def test_a_name_missing_from_a_listed_module_says_so(modules, monkeypatch):
    name, _ = modules("from batchjobs import batchable\n@batchable\ndef run(): pass\n")
    monkeypatch.setenv("BATCHJOBS_IMPORTS", name)
    assert f"'{name}.walk' is not in module '{name}' (it has no 'walk')" in \
        unknown(f"{name}.walk")


def test_a_name_in_no_listed_module_names_every_module_searched(modules, monkeypatch):
    first, _ = modules("")
    second, _ = modules("raise ValueError('boom')\n")
    monkeypatch.setenv("BATCHJOBS_IMPORTS", f"{first},{second}")
    message = unknown("elsewhere.jobs.run")
    assert f"searched: batchjobs.examples, {first}, {second} (raised)" in message


def test_the_three_import_problems_give_three_messages_from_the_cli(tmp_path):
    """Submitted from the CLI in a fresh interpreter: a missing module, an ImportError
    inside a module and a missing decorator exit 2 with three different lines, and
    `this` (named by a job) is not imported."""
    (tmp_path / "broken_jobs.py").write_text("import no_such_dependency_xyz\n")
    (tmp_path / "plain_jobs.py").write_text("def run(): pass\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("BATCHJOBS_DATABASE_URL", "BATCHJOBS_BROKER_URL")}
    env.update(BATCHJOBS_HOME=str(tmp_path), PYTHONPATH=os.pathsep.join(
        [str(tmp_path), str(Path(__file__).resolve().parent.parent)]),
        BATCHJOBS_IMPORTS="missing_jobs,broken_jobs,plain_jobs")
    lines = {}
    for process in ("missing_jobs.run", "broken_jobs.run", "plain_jobs.run", "this.s"):
        job = tmp_path / "job.yaml"
        job.write_text(f"description: J\ntasks:\n  - {{name: A, process: {process}}}\n")
        result = subprocess.run([sys.executable, "-c", "from batchjobs.cli import main; main()",
                                 "submit", str(job)],
                                capture_output=True, check=False, text=True, env=env, cwd=tmp_path,
                                timeout=120)
        assert result.returncode == 2, result.stderr
        assert result.stdout == "" and "Traceback" not in result.stderr
        assert len(result.stderr.splitlines()) == 1, result.stderr
        lines[process] = result.stderr
    assert "module 'missing_jobs' is not found" in lines["missing_jobs.run"]
    assert "module 'broken_jobs' raised while importing: ModuleNotFoundError" \
        in lines["broken_jobs.run"]
    assert "broken_jobs.py:1" in lines["broken_jobs.run"]
    assert "not marked @batchable" in lines["plain_jobs.run"]
    assert "no configured module defines 'this.s'" in lines["this.s"]
    assert "Beautiful is better than ugly" not in lines["this.s"]


def test_a_name_under_an_imported_but_unlisted_package_is_in_no_configured_module():
    assert "tests.processes" in sys.modules          # imported, but not a listed module
    message = unknown("tests.processes.not_a_module.run")
    assert "no configured module defines 'tests.processes.not_a_module.run'" in message
