#!/usr/bin/python3
"""Regenerates every fixture under tests/fixtures/ from PyTorch.

    /usr/bin/python3 tests/make_fixtures.py            # all of them
    /usr/bin/python3 tests/make_fixtures.py nn         # only tests/fixtures_nn.py

Each tests/fixtures_AREA.py defines generate(write), calling write(name, {tensor name:
tensor}) once per fixture file; write() puts it in tests/fixtures/NAME.bin. Seeds are
fixed, so a rerun on the same PyTorch version gives the same files.
"""
import glob
import importlib.util
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from fixture_format import write_fixture  # noqa: E402


def main():
    torch.set_num_threads(1)
    out_dir = os.path.join(HERE, "fixtures")
    os.makedirs(out_dir, exist_ok=True)
    wanted = set(sys.argv[1:])
    for path in sorted(glob.glob(os.path.join(HERE, "fixtures_*.py"))):
        area = os.path.basename(path)[len("fixtures_"):-3]
        if wanted and area not in wanted:
            continue
        spec = importlib.util.spec_from_file_location("fixtures_" + area, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)

        def write(name, tensors):
            write_fixture(os.path.join(out_dir, name + ".bin"), tensors)
            print(f"  {name}.bin: {len(tensors)} tensors")

        print(f"{area}:")
        mod.generate(write)


if __name__ == "__main__":
    main()
