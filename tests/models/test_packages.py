"""models/ holds one package per family, each installed as tinyml.models.<family> (setup.py's
package discovery finds a folder only when it has an __init__.py) and each saying what it holds."""
import importlib
import os

import pytest
from setuptools import find_packages

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.path.join(ROOT, "models")
FAMILIES = sorted(d for d in os.listdir(MODELS)
                  if os.path.isdir(os.path.join(MODELS, d)) and not d.startswith(("_", ".")))


def test_the_families_of_the_design():
    assert {"transformer", "ssm", "peft", "vision", "detection"} <= set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_folder_is_an_installed_package(family):
    assert f"models.{family}" in find_packages(where=ROOT, include=["models", "models.*"])  # as setup.py asks
    module = importlib.import_module(f"tinyml.models.{family}")
    assert os.path.dirname(module.__file__) == os.path.join(MODELS, family)
    assert module.__doc__ and module.__doc__.strip()
