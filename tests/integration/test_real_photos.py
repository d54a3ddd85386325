"""The seeds' real CIFAR-100 photos, read as they uploaded them, and the floor the default recipe must hold.

Third-party data, never copied into the repository: read from ../shared beside the clone, skipped
where absent. The slow test trains the default recipe (about 1.5 minutes on a quiet 2-core CPU), serves
the artifact with the real model server and calls it with boto3, as the workflow does.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SEEDS_DATA = REPO.parent / "shared" / "data" / "cifar100-bicycle-motorcycle"
# The seven bike_s_* photos that are motorcycles (SOURCE.md), six in train and one in test: labels
# come from the manifests only.
BIKE_NAMED_MOTORCYCLES = {"train": {"bike_s_000001.png", "bike_s_000023.png", "bike_s_000025.png", "bike_s_000035.png",
                                    "bike_s_000062.png", "bike_s_000121.png"},
                          "test": {"bike_s_000041.png"}}
# Regression floors under what the default recipe measured (README, "Training on real photos"). Issue 14's
# targets are 0.92 and 75 % auto-routed at 0.93 with 98 % right; seed 0 on this CPU measured 0.950, 75.5 %, 98.7 %.
# The floors leave room for another CPU's float path: over ten seeds (GPU) the recipe routed 66-80 % at >= 98.6 % right.
ACCURACY_FLOOR = 0.90
ROUTED_SHARE_FLOOR, ROUTED_ACCURACY_FLOOR = 0.60, 0.97  # at the workflow's threshold 0.93

pytestmark = pytest.mark.skipif(not (SEEDS_DATA / "train.lst").is_file(),
                                reason=f"the seeds' real photos are not at {SEEDS_DATA} (third-party data, not in the repo)")


def test_the_seeds_layout_is_read_as_uploaded() -> None:
    from scones.model.training_data import load_split

    images, labels, classes = load_split(SEEDS_DATA / "train", None, ("bicycle", "motorcycle"))
    assert images.shape == (1000, 3, 32, 32) and classes == ["bicycle", "motorcycle"]
    assert labels.bincount().tolist() == [500, 500]
    for split, names in BIKE_NAMED_MOTORCYCLES.items():
        rows = {name: label for _, label, name in (line.split("\t") for line in (SEEDS_DATA / f"{split}.lst").read_text().split("\n") if line)}
        assert {rows[name] for name in names} == {"1"}, split
        assert sum(name.startswith("bike_s_") and label == "1" for name, label in rows.items()) == len(names), split
    test_images, test_labels, _ = load_split(SEEDS_DATA / "test", None, ("bicycle", "motorcycle"))
    assert test_images.shape == (200, 3, 32, 32) and test_labels.bincount().tolist() == [100, 100]


def test_validation_split_is_stratified_seeded_and_disjoint() -> None:
    import torch

    from scones.model.training_data import stratified_split

    labels = torch.tensor([0] * 500 + [1] * 500)
    train, val = stratified_split(labels, 0.1, seed=0)
    assert labels[val].bincount().tolist() == [50, 50]
    assert not set(train.tolist()) & set(val.tolist()) and len(train) + len(val) == 1000
    assert torch.equal(val, stratified_split(labels, 0.1, seed=0)[1])
    assert not torch.equal(val, stratified_split(labels, 0.1, seed=1)[1])


def test_stage_from_dir_writes_our_layout(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from scones.model.cli import data

    result = CliRunner().invoke(data, ["stage", "--from-dir", str(SEEDS_DATA), "--out", str(tmp_path / "staged")])
    assert result.exit_code == 0, result.output
    assert "train: 1000 images (bicycle 500, motorcycle 500)" in result.output
    staged = tmp_path / "staged"
    assert json.loads((staged / "classes.json").read_text()) == ["bicycle", "motorcycle"]
    assert (staged / "test" / "test.lst").read_text() == (SEEDS_DATA / "test.lst").read_text()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_default_recipe_served_through_boto3_holds_the_floor(tmp_path: Path, start_model_server) -> None:
    """`scones train --data <seeds' folder>` as is, then every test photo through invoke_endpoint."""
    import boto3

    from scones.model.train import main

    assert main(["--data", str(SEEDS_DATA), "--out", str(tmp_path / "model"), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert metrics["chosen_on"] == "validation" and metrics["validation"]["images"] == 200
    assert (tmp_path / "model" / "reliability.png").stat().st_size > 0
    server = start_model_server(tmp_path / "model" / "model.tar.gz")
    runtime = boto3.client("sagemaker-runtime", endpoint_url=server.url, region_name="us-east-1")
    rows = [line.split("\t") for line in (SEEDS_DATA / "test.lst").read_text().splitlines() if line]
    answers = []
    for _, label, name in rows:
        body = (SEEDS_DATA / "test" / name).read_bytes()
        probabilities = json.loads(runtime.invoke_endpoint(EndpointName=server.endpoint_name, ContentType="image/png",
                                                           Body=body)["Body"].read())
        answers.append((max(probabilities), probabilities.index(max(probabilities)) == int(label)))
    accuracy = sum(right for _, right in answers) / len(answers)
    routed = [right for confidence, right in answers if confidence >= 0.93]
    print(f"served: accuracy {accuracy:.3f}, auto-routed {len(routed) / len(answers):.1%}, "
          f"{sum(routed) / max(1, len(routed)):.1%} of them right; training {metrics['train_seconds']} s")
    assert accuracy == pytest.approx(metrics["test"]["accuracy"], abs=0.011)  # served = what training reported
    assert accuracy >= ACCURACY_FLOOR
    assert len(routed) / len(answers) >= ROUTED_SHARE_FLOOR
    assert sum(routed) / len(routed) >= ROUTED_ACCURACY_FLOOR
