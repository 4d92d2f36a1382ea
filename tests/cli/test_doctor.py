"""``hcmeasure doctor`` reports versions, the Detectron2 route and what is found."""
from hcmeasure.cli.main import main


def test_doctor_reports_the_environment(capsys):
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    for key in ("python", "torch", "torchvision", "detectron2 route", "detectron2 _C", "CUDA",
                "torchvision ops", "HC18 data", "EfficientNet-Lite0 weights", "default HC model",
                "highdicom (--dicom-sr)", "dciodvfy (SR checks)"):
        assert key in out
    assert "roi_align/nms load" in out
    assert "_C               absent" in out or "_C               present" in out
