"""Every script in ``scripts/`` starts: its imports resolve and ``--help`` exits 0.

A module moved inside the package (as ``test_time`` once moved from ``models`` to ``inference``) breaks a script only
when someone runs it; this runs all of them in one child process (the package imported once), as ``python
scripts/<name>.py --help`` would.
"""
import glob
import json
import os.path as osp
import subprocess
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

RUN_ALL = r'''
import contextlib, io, json, runpy, sys, traceback
results = {}
for path in sys.argv[1:]:
    sys.argv = [path, '--help']
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            runpy.run_path(path, run_name='__main__')
        results[path] = 'returned without exiting (no --help?)' if 'usage' not in out.getvalue() else 0
    except SystemExit as e:
        results[path] = e.code if e.code not in (None, 0) else (0 if 'usage' in out.getvalue() else 'no usage text')
    except BaseException:
        results[path] = traceback.format_exc(limit=-3)
print(json.dumps(results))
'''


def test_every_script_shows_its_help():
    scripts = sorted(glob.glob(osp.join(REPO_ROOT, 'scripts', '*.py')))
    assert len(scripts) >= 10
    proc = subprocess.run([sys.executable, '-c', RUN_ALL] + scripts, cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    failed = {osp.basename(path): result for path, result in results.items() if result != 0}
    assert not failed, '\n'.join(f'{name}: {result}' for name, result in failed.items())
