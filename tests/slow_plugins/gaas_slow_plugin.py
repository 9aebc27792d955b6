"""A plugin slow to import the first time only: a zygote that loads it passes its start-up limit
once (GAAS_SLOW_PLUGIN_MARKER names the file that remembers the first import)."""

import os
import time
from pathlib import Path

_marker = Path(os.environ.get("GAAS_SLOW_PLUGIN_MARKER", "/nonexistent/marker"))
if _marker.parent.is_dir() and not _marker.exists():
    _marker.write_text("imported once\n")
    time.sleep(float(os.environ.get("GAAS_SLOW_PLUGIN_SECONDS", "6")))
