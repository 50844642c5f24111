import os
import sys

# test helpers (data_factory.py) live beside this file; make them importable from tests in subfolders
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
