"""The project's real function_app.py, serving only its process-email function (tests/inbound).

The inbound tests read process-image messages off the queue; with the whole app hosted, its process-image
trigger would take them first. Bindings, route, auth level and handler are the real app's: this file loads
/function_app.py itself and drops the other functions from its app object.
"""

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

_spec = importlib.util.spec_from_file_location("_trapalert_function_app", ROOT / "function_app.py")
_real = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_real)

app = _real.app
app._function_builders[:] = [
    b for b in app._function_builders if b._function.get_function_name() == "process-email"
]
