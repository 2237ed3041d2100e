"""Make `tinyml.models` / `tinyml.train` importable from a development checkout that was not
installed with `pip install -e .` (setup.py maps them from the top-level models/ and train/)."""
import importlib.util
import os
import sys

import tinyml

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _mount(sub: str) -> None:
    name = f"tinyml.{sub}"
    if name in sys.modules or importlib.util.find_spec(name) is not None:
        return
    path = os.path.join(_ROOT, sub)
    spec = importlib.util.spec_from_file_location(name, os.path.join(path, "__init__.py"),
                                                  submodule_search_locations=[path])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    setattr(tinyml, sub, module)


_mount("models")
_mount("train")
