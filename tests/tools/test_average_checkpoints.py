"""tools/average_checkpoints.py: uniform weight averaging of checkpoints of one model."""
from pathlib import Path

import pytest
import torch
from torch import nn


@pytest.fixture(scope="module")
def tool(load_tool):
    return load_tool("average_checkpoints")


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2))
    model[1].running_mean.uniform_(-1, 1)
    model[1].num_batches_tracked.fill_(seed)
    return model


def _save(model: nn.Module, path: Path, **extra) -> Path:
    torch.save({"model": model.state_dict(), "iteration": 1, **extra}, path)
    return path


def test_floats_are_averaged_and_counters_come_from_the_last_checkpoint(tool, tmp_path):
    models = [_model(s) for s in (1, 2, 3)]
    paths = [_save(m, tmp_path / f"model_{i}.pth") for i, m in enumerate(models)]
    tool.main([*map(str, paths), "--out", str(tmp_path / "avg.pth")])
    saved = torch.load(tmp_path / "avg.pth", map_location="cpu", weights_only=False)
    avg = saved["model"]
    for key in ("0.weight", "0.bias", "1.weight", "1.running_mean", "1.running_var"):
        expected = sum(m.state_dict()[key] for m in models) / 3
        torch.testing.assert_close(avg[key], expected)
    assert avg["1.num_batches_tracked"].item() == 3
    assert saved["averaged_from"] == [str(p) for p in paths]
    # The averaged weights load into the same model.
    _model(0).load_state_dict(avg)


def test_half_precision_checkpoints_are_averaged_in_float32_and_stay_half(tool, tmp_path):
    a = {"w": torch.tensor([1.0, 3.0], dtype=torch.float16)}
    b = {"w": torch.tensor([2.0, 6.0], dtype=torch.float16)}
    avg = tool.average_states([a, b], ["a", "b"])
    assert avg["w"].dtype == torch.float16
    assert avg["w"].tolist() == [1.5, 4.5]


def test_checkpoints_of_different_models_are_refused_by_name(tool, tmp_path):
    good = _save(_model(1), tmp_path / "good.pth")
    other = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    wrong_shape = _save(other, tmp_path / "wrong_shape.pth")
    with pytest.raises(SystemExit, match=r"wrong_shape\.pth: 0\.weight has shape"):
        tool.main([str(good), str(wrong_shape), "--out", str(tmp_path / "avg.pth")])
    torch.save({"model": {"x": torch.zeros(1)}}, tmp_path / "other_keys.pth")
    with pytest.raises(SystemExit, match=r"other_keys\.pth: its parameters differ"):
        tool.main([str(good), str(tmp_path / "other_keys.pth"), "--out", str(tmp_path / "avg.pth")])
    assert not (tmp_path / "avg.pth").exists()


def test_a_missing_or_foreign_file_is_named(tool, tmp_path):
    good = _save(_model(1), tmp_path / "good.pth")
    with pytest.raises(SystemExit, match=r"missing\.pth: not found"):
        tool.main([str(good), str(tmp_path / "missing.pth"), "--out", str(tmp_path / "avg.pth")])
    torch.save({"model": "not weights"}, tmp_path / "foreign.pth")
    with pytest.raises(SystemExit, match=r"foreign\.pth: not a checkpoint of model weights"):
        tool.main([str(good), str(tmp_path / "foreign.pth"), "--out", str(tmp_path / "avg.pth")])
