"""`taylor-fast demo` end to end at a toy size: data, two trainings side by side, evaluation,
timing, figure; with a zero time budget both runs stop together after one step."""
from PIL import Image

from taylor_fast import cli
from taylor_fast.engine import checkpoint


def test_demo_runs_and_writes_the_figure(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--out", str(out), "--iters", "3", "--size", "48", "--patch", "24",
                     "--time-budget", "0", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "stopped both runs at iteration 1 of 3" in text
    for row in ("rainy input", "order 0 (tiny alone)", "order 3 (tiny + Taylor G)", "reference"):
        assert row in text
    figure = Image.open(out / "demo.png")
    assert figure.width == 4 * 48 and figure.height > 2 * 32  # 4 panels, one row per held-out photo
    for order in (0, 3):
        state = checkpoint.load(out / "runs" / f"order{order}" / "last.ckpt")
        assert state["progress"]["iteration"] == 1 and state["config"]["model"]["order"] == order
    assert len(list((out / "data" / "test" / "input").iterdir())) == 4  # 2 photos x 2 rain draws
