"""The `mesascope` console script (`mesascope.cli.console_script`): it ends the process without tearing the
interpreter down, and still returns the command's exit status, prints all of its output, runs the exit
handlers, and waits for a non-daemon thread as an ordinary exit would."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _script(body: str, *args: str) -> subprocess.CompletedProcess:
    code = textwrap.dedent(
        """
        import atexit, sys, threading, time
        from mesascope.cli import console_script
        sys.argv = ["mesascope", *sys.argv[1:]]
        """
    ) + textwrap.dedent(body) + "\nconsole_script()\n"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


def test_output_status_and_exit_handlers_survive_the_fast_exit():
    done = _script('atexit.register(lambda: print("exit handler ran"))', "explain", "outer_alignment")
    assert done.returncode == 0, done.stderr
    # The whole explanation (block-buffered into a pipe) is flushed before the handler's line.
    assert "outer_alignment" in done.stdout and done.stdout.rstrip().endswith("exit handler ran")


def test_an_error_keeps_its_exit_status_and_message(tmp_path):
    done = _script("", "audit", str(tmp_path / "missing"))
    assert done.returncode == 2
    assert "is not a mesascope run folder" in done.stderr and "Traceback" not in done.stderr


def test_a_running_non_daemon_thread_is_waited_for(tmp_path):
    marker = tmp_path / "thread-finished"
    body = f"""
    def late():
        time.sleep(0.5)
        open({str(marker)!r}, "w").write("done")
    threading.Thread(target=late).start()
    """
    done = _script(body, "explain", "outer_alignment")
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "done"
