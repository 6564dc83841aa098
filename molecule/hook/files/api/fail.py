"""The scenario's failing hook: says which credentials it tried, then exits 3."""

import os
import sys
from urllib.parse import urlsplit

url = os.environ["DATABASE_URL"]
print(f"connecting to {url}", flush=True)
sys.stderr.write(f"FATAL: password authentication failed (password {urlsplit(url).password})\n")
sys.exit(3)
