"""Charts display as images: ``.plot()`` results carry PNG for Jupyter and nbconvert."""

from __future__ import annotations

import pickle
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from IPython.core.interactiveshell import InteractiveShell

from engagelab.experiments import analyze
from engagelab.figures import new_figure, png_data_uri, svg_text

PNG = b"\x89PNG\r\n\x1a\n"


def _mime(obj) -> dict:
    data, _ = InteractiveShell.instance().display_formatter.format(obj)
    return data


def test_new_figure_displays_as_png_without_pyplot():
    fig = new_figure(figsize=(3, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    data = _mime(fig)
    assert data["image/png"][:8] == PNG
    assert png_data_uri(fig).startswith("data:image/png;base64,iVBOR")
    assert svg_text(fig).startswith("<svg")
    assert type(pickle.loads(pickle.dumps(fig))).__name__ == "Chart"


def test_experiment_result_plot_is_an_image():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"arm": rng.choice(["A", "B"], 2000), "y": rng.integers(0, 2, 2000)})
    fig = analyze(df, arm_col="arm", control="A", metrics=["y:proportion"]).plot()
    assert _mime(fig)["image/png"][:8] == PNG


def test_importing_figures_does_not_load_matplotlib():
    code = "import sys, engagelab.figures; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_job_html_report_embeds_the_charts(tmp_path):
    from pathlib import Path

    from engagelab import Workspace
    from engagelab.jobs import JobSpec, add_job, run_job

    root = Path(__file__).resolve().parents[1]
    with Workspace.create(tmp_path / "ws") as ws:
        add_job(ws, JobSpec(name="analysis", notebook=str(root / "notebooks" / "analyze_experiment.ipynb"),
                            fixed={"users": 3000, "seed": 2, "output_dir": str(tmp_path / "o")},
                            html_report=True))  # fmt: skip
        r = run_job(ws, "analysis", "2026-03-01")
        assert r.status == "succeeded", r
        html = Path(r.last["html_path"]).read_text()
    assert re.search(r'<img[^>]*src="data:image/png;base64,', html)
    assert "&lt;Figure size" not in html
