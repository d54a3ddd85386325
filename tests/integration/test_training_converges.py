"""Training on the generated CIFAR-format set: convergence, metrics, and a loadable, faithful artifact."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile

import pytest
import torch

from scones.model.artifact import load_artifact
from scones.model.train import main
from fixtures.model_fixtures import FIXTURE_ENSEMBLE, FIXTURE_EPOCHS

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_training_reaches_95_percent_on_synth(trained_model):
    assert trained_model.test.accuracy >= 0.95, trained_model.history
    print(f"fixture training: {trained_model.seconds:.1f} s, test accuracy={trained_model.test.accuracy:.4f}")


def test_metrics_json_and_confusion_matrix(trained_model):
    metrics = json.loads((trained_model.artifact.parent / "metrics.json").read_text())
    assert metrics["chosen_on"] == "validation"
    assert [m["val_acc"] for m in metrics["chosen"]] == [m.val_acc for m in trained_model.chosen]
    assert [m["member"] for m in metrics["chosen"]] == list(range(1, FIXTURE_ENSEMBLE + 1))
    assert metrics["test"]["accuracy"] == trained_model.test.accuracy and metrics["confusion_matrix_split"] == "test"
    assert metrics["validation"]["images"] == 80 and metrics["test"]["images"] == 80  # 20 % of 2 x 200 held out
    assert len(metrics["epochs"]) == FIXTURE_EPOCHS * FIXTURE_ENSEMBLE
    assert sum(map(sum, metrics["confusion_matrix"])) == 80
    assert metrics["class_names"] == ["bicycle", "motorcycle"]


def test_artifact_holds_contract_files(model_artifact):
    with tarfile.open(model_artifact) as tar:
        names = set(tar.getnames())
        meta = json.load(tar.extractfile("model.json"))
        baseline = json.load(tar.extractfile("baseline.json"))
    assert {"model.pth", "model.json", "baseline.json", "code/inference.py", "code/requirements.txt"} <= names
    assert meta["architecture"] == "convnet_cifar" and meta["members"] == FIXTURE_ENSEMBLE
    assert meta["class_names"] == ["bicycle", "motorcycle"]
    assert meta["image_size"] == 32 and len(meta["mean"]) == len(meta["std"]) == 3
    assert len(baseline["max_confidence"]) == 80 and baseline["threshold"] == 0.93
    assert sum(baseline["predicted_class_counts"].values()) == 80


def test_artifact_round_trips_the_same_predictions(model_artifact, trained_model, tmp_path, sample_images):
    loaded = load_artifact(model_artifact, tmp_path / "a")
    again = load_artifact(model_artifact, tmp_path / "b")
    state = torch.load(trained_model.model_dir / "model.pth", weights_only=True)
    assert all(torch.equal(state[k], v.cpu()) for k, v in loaded.model.net.state_dict().items())
    module = loaded.module
    for label, images in enumerate(sample_images.values()):
        batch = torch.cat([module.input_fn(png, "image/png") for png in images])
        first = module.predict_fn(batch, loaded.model)
        assert torch.equal(first, again.module.predict_fn(batch, again.model))
        assert (first.argmax(1) == label).all()
        assert first.max(1).values.median() >= 0.93


def test_sample_images_are_confidently_classified_one_by_one(model_artifact, tmp_path, sample_images):
    loaded = load_artifact(model_artifact, tmp_path)
    for label, images in enumerate(sample_images.values()):
        for png in images:
            body, _ = loaded.module.output_fn(loaded.module.predict_fn(loaded.module.input_fn(png, "image/png"), loaded.model), "application/json")
            probabilities = json.loads(body)
            assert probabilities.index(max(probabilities)) == label
            assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)


def test_script_prints_sagemaker_metric_lines(staged_data, tmp_path):
    """`python -m scones.model.train` (the SageMaker entry point) with SageMaker's env variables."""
    env = {"SM_MODEL_DIR": str(tmp_path / "sm-model"), "SM_CHANNEL_TRAIN": str(staged_data / "train"),
           "SM_CHANNEL_TEST": str(staged_data / "test"), "SM_NUM_GPUS": "0",
           "SM_OUTPUT_DATA_DIR": str(tmp_path / "sm-output"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "scones.model.train", "--epochs", "1", "--width", "4", "--quiet"],
                            env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    assert re.search(r"^epoch=1 train_loss=[0-9.]+ train_acc=[0-9.]+ val_loss=[0-9.]+ val_acc=([0-9.]+)", result.stdout, re.M)
    assert (tmp_path / "sm-model" / "model.pth").is_file() and (tmp_path / "sm-model" / "code" / "inference.py").is_file()
    assert (tmp_path / "sm-output" / "metrics.json").is_file()


def test_missing_data_is_a_named_error(tmp_path, capsys):
    assert main(["--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "out")]) == 2
    assert "TrainingDataMissing" in capsys.readouterr().err


def test_pretrained_offline_is_a_named_error(staged_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no cached weights
    assert main(["--data", str(staged_data), "--out", str(tmp_path), "--pretrained", "--architecture", "resnet18_cifar",
                 "--width", "64", "--epochs", "1"]) == 2
    assert "PretrainedWeightsUnavailable" in capsys.readouterr().err


def test_pretrained_needs_the_resnet(staged_data, tmp_path, capsys):
    assert main(["--data", str(staged_data), "--out", str(tmp_path), "--pretrained", "--epochs", "1"]) == 2
    assert "needs --architecture resnet18_cifar --width 64" in capsys.readouterr().err


def test_failure_text_for_sagemaker(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SM_MODEL_DIR", str(tmp_path / "model"))
    monkeypatch.setenv("SM_OUTPUT_DIR", str(tmp_path / "output"))
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(tmp_path / "absent"))
    assert main([]) == 2
    assert (tmp_path / "output" / "failure").read_text().startswith("TrainingDataMissing: ")
