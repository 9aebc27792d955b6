"""The README's curl walkthrough works as written, pasted into bash."""

import re
import subprocess
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def walkthrough():
    text = README.read_text()
    block = re.search(r"<!-- walkthrough:start -->\n```bash\n(.*?)```\n<!-- walkthrough:end -->", text, re.S)
    return block.group(1)


def test_curl_walkthrough(live, tmp_path):
    live.add_user("demo", "demo-pw")
    result = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + walkthrough()],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "URL": live.url, "PASSWORD": "demo-pw"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert '"username":"demo"' in out
    assert "Sellar1" in out and '"x_1"' in out
    assert '{"y_1": [1.6733200530681511]}' in out
    assert '"y_1": {"x_1": [[' in out
    assert "downloaded the same bytes" in out
    lines = out.rstrip().splitlines()
    # The last job's status, the batch's status after its long poll, then the CSV header and two points.
    assert lines[-5:-3] == ["finished", "finished"], lines[-5:]
    assert lines[-3].startswith("batch_index,job_id,job_status,error,x_1,")
    assert all(line.split(",")[2] == "finished" for line in lines[-2:])
