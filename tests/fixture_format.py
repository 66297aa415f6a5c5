"""Writer for the fixture files read by tests/testutil.c (format described there)."""
import struct

import torch


def write_fixture(path, tensors):
    """tensors: dict name -> torch tensor (floating -> f32, integer -> i64)."""
    with open(path, "wb") as f:
        f.write(b"DCFX")
        f.write(struct.pack("<II", 1, len(tensors)))
        for name, t in tensors.items():
            t = t.detach().cpu().contiguous()
            raw = name.encode()
            f.write(struct.pack("<I", len(raw)))
            f.write(raw)
            f.write(struct.pack("<I", t.dim()))
            for d in t.shape:
                f.write(struct.pack("<q", d))
            if t.is_floating_point():
                f.write(struct.pack("<I", 0))
                f.write(t.to(torch.float32).numpy().astype("<f4").tobytes())
            else:
                f.write(struct.pack("<I", 1))
                f.write(t.to(torch.int64).numpy().astype("<i8").tobytes())
