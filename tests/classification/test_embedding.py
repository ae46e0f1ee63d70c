"""The pretrained backbone: weights read without code, the graph built from them, golden embeddings."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import sys
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from classification import embedding, synthetic
from classification.weights import LEGACY_MAGIC, LEGACY_PROTOCOL, UnsafeWeights, load_state_dict

GOLDEN = json.loads((Path(__file__).parent / "golden" / "embedding.json").read_text())


def test_embeddings_of_fixed_pictures_match_the_golden_values():
    assert embedding.backbone_version() == GOLDEN["backbone"]
    for kind, expected in GOLDEN["pictures"].items():
        picture = synthetic.picture(kind=kind, color="Red", width=320, height=240, seed=0)
        vector = embedding.embed([picture])[0]
        assert vector.shape == (embedding.EMBEDDING_DIM,)
        np.testing.assert_allclose(vector[::20], expected["every_20th"], atol=2e-3, rtol=1e-3)
        assert float(vector.mean()) == pytest.approx(expected["mean"], abs=1e-3)
        assert float(np.linalg.norm(vector)) == pytest.approx(expected["norm"], rel=1e-3)


def test_the_backbone_recognises_imagenet_classes_in_a_real_photo():
    """A wrong graph (padding, normalisation, a block out of place) still gives numbers; the cat does not."""
    import skimage.data

    cat = Image.fromarray(skimage.data.chelsea())
    top5 = np.argsort(-embedding.imagenet_logits([cat])[0])[:5]
    # ImageNet 281 tabby, 282 tiger cat, 285 Egyptian cat
    assert top5[0] in (281, 282, 285)


def test_a_batch_gives_the_same_embeddings_as_one_at_a_time():
    pictures = [synthetic.picture(kind=k, color="Blue", width=300, height=200, seed=3) for k in synthetic.KINDS]
    batch = embedding.embed(pictures)
    single = np.stack([embedding.embed([p])[0] for p in pictures])
    np.testing.assert_allclose(batch, single, atol=1e-4)


def test_the_wheel_weights_load_as_arrays_without_torch():
    state = load_state_dict(embedding.weights_path())
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert all(isinstance(v, np.ndarray) for v in state.values())


def _legacy_file(tmp_path: Path, payload: bytes) -> Path:
    """A legacy-layout checkpoint whose state-dict pickle is ``payload``."""
    out = io.BytesIO()
    for header in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"protocol_version": 1001, "little_endian": True}):
        pickle.dump(header, out, protocol=2)
    out.write(payload)
    pickle.dump([], out, protocol=2)
    path = tmp_path / "evil.pth"
    path.write_bytes(out.getvalue())
    return path


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_the_loader_refuses_a_checkpoint_that_names_any_other_global(tmp_path):
    marker = tmp_path / "pwned"
    path = _legacy_file(tmp_path, pickle.dumps({"w": _Exploit(marker)}, protocol=2))
    with pytest.raises(UnsafeWeights, match="refused global"):
        load_state_dict(path)
    assert not marker.exists()


def test_the_loader_refuses_a_zip_checkpoint_that_names_any_other_global(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"w": _Exploit(marker)}, protocol=2))
    with pytest.raises(UnsafeWeights, match="refused global"):
        load_state_dict(path)
    assert not marker.exists()


def test_the_loader_refuses_a_header_carrying_a_global(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps(_Exploit(marker), protocol=2))
    with pytest.raises(UnsafeWeights):
        load_state_dict(path)
    assert not marker.exists()


def test_the_loader_refuses_a_tensor_that_reaches_outside_its_storage(tmp_path):
    """A state dict of one 2x2 float tensor whose storage holds only 3 floats."""

    class FloatStorage:  # pickled by name as torch.FloatStorage
        __module__, __qualname__ = "torch", "FloatStorage"

    def rebuild():  # pickled by name as torch._utils._rebuild_tensor_v2
        pass

    rebuild.__module__, rebuild.__qualname__ = "torch._utils", "_rebuild_tensor_v2"

    class Tensor:
        def __reduce__(self):
            return (rebuild, ("storage-0", 0, (2, 2), (2, 1), False, None))

    out = io.BytesIO()

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", FloatStorage, "0", "cpu", 3) if obj == "storage-0" else None

    # Pickle names globals by module; stand-in modules let it write torch's names without torch.
    fake_torch = types.ModuleType("torch")
    fake_torch.FloatStorage = FloatStorage
    fake_utils = types.ModuleType("torch._utils")
    fake_utils._rebuild_tensor_v2 = rebuild
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules.update({"torch": fake_torch, "torch._utils": fake_utils})
    try:
        Pickler(out, protocol=2).dump({"w": Tensor()})
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    path = _legacy_file(tmp_path, out.getvalue())
    # the storage keys pickle, then 3 floats
    data = path.read_bytes()
    trailer = pickle.dumps([], protocol=2)
    data = data[: -len(trailer)] + pickle.dumps(["0"], protocol=2) + struct.pack("<q", 3) + b"\0" * 12
    path.write_bytes(data)
    with pytest.raises(UnsafeWeights, match="outside its storage"):
        load_state_dict(path)
