"""`scones review` end to end: photos the real workflow sent to review/ are labelled in a real
headless chromium (Playwright driving Debian's chromium), the answers checked in S3, one undone,
then counted by the monitor's review summary and used by `scones train --include-reviewed`."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fixtures.stack_fixtures import embedded_settings
from scones.local.stacks.embedded import free_port, start_stack, stop_stack, wait_ready
from scones.local.stacks.state import load_state
from scones.local.workflow_client import ImageRef, run_images
from scones.model.train import DEFAULT_VAL_FRACTION
from scones.model.review.store import ReviewStore
from scones.model.review.summary import summarize_reviews

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# --headless is added by Playwright; the rest keeps chromium off the network and out of the sandbox it cannot have as root.
BROWSER_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
NASTY_KEY = 'photos/<b id="injected">bold</b>&"quote".png'  # S3 allows it; the page must show it as text
REVIEWER = "alice"


def training_pairs(staged_data: Path, count: int) -> list[bytes]:
    """Half-and-half blends of a training bicycle and a training motorcycle: the model is unsure of them."""
    class_names = json.loads((staged_data / "classes.json").read_text())
    rows = [line.split("\t") for line in (staged_data / "train" / "train.lst").read_text().splitlines()]
    by_class = {name: [staged_data / "train" / path for _, label, path in rows if class_names[int(label)] == name]
                for name in class_names}
    blends = []
    for first, second in list(zip(*by_class.values()))[:count]:
        pixels = [np.asarray(Image.open(path).convert("RGB"), dtype=float) for path in (first, second)]
        buffer = io.BytesIO()
        Image.fromarray(((pixels[0] + pixels[1]) / 2).astype(np.uint8)).save(buffer, format="PNG")
        blends.append(buffer.getvalue())
    return blends


@pytest.fixture(scope="module")
def review_stack(model_artifact: Path, tmp_path_factory: pytest.TempPathFactory):
    """An embedded stack whose threshold (1.0) sends every photo to review."""
    settings = embedded_settings(tmp_path_factory.mktemp("review-home"))
    start_stack(settings, model_artifact, threshold=1.0)
    try:
        yield settings, load_state(settings)
    finally:
        stop_stack(settings)


def queue_photos(state, photos: list[tuple[str, bytes]]) -> list[str]:
    """Runs each photo through the workflow, one after another (so their review order is known)."""
    s3, sfn = state.client("s3"), state.client("stepfunctions")
    items = []
    for key, body in photos:
        s3.put_object(Bucket=state.bucket, Key=key, Body=body)
        [outcome] = run_images(sfn, state.state_machine_arn, [ImageRef(key, state.bucket, key)], timeout_s=120)
        assert outcome.outcome == "review", outcome
        items.append(outcome.execution_arn.rsplit(":", 1)[-1])
    return items


@pytest.fixture(scope="module")
def review_server(review_stack, tmp_path_factory: pytest.TempPathFactory):
    settings, _ = review_stack
    port = free_port()
    log_path = tmp_path_factory.mktemp("review-server") / "review.log"
    env = {**os.environ, "SCONES_HOME": str(settings.home)}
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "scones.local.cli", "review", "--port", str(port),
                                    "--reviewer", REVIEWER], stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready("review page", process, log_path, lambda: http_status(f"{url}/api/queue") == 200, 60)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


def http_status(url: str, data: bytes | None = None, headers: dict | None = None) -> int | None:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers or {}), timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def label_document(s3, bucket: str, item: str) -> dict | None:
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=f"labels/{item}.json")["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


def wait_shown(page, item: str | None = None, changed_from: str | None = None) -> str:
    """Waits until the page is idle and shows `item` (or anything but `changed_from`); returns what it shows."""
    page.wait_for_function(
        """([item, previous]) => {
            const shown = document.getElementById("item-name").textContent;
            return document.body.dataset.state === "ready" && (item ? shown === item : shown !== previous);
        }""", arg=[item, changed_from], timeout=30_000)
    page.wait_for_function("() => { const p = document.getElementById('photo'); return p.complete && p.naturalWidth > 0; }")
    return page.text_content("#item-name")


def assert_one_answer(document: dict, label: str, record: dict) -> None:
    """The label document holds this page's one answer and the review record it answers."""
    [answer] = document["humanAnswers"]
    assert answer["answerContent"] == {"label": label} and answer["workerId"] == REVIEWER
    assert datetime.fromisoformat(answer["submissionTime"]) >= datetime.fromisoformat(answer["acceptanceTime"])
    content = document["inputContent"]
    assert content["executionArn"] == record["execution_id"]
    assert content["image"] == record["image"] and content["s3_key"] == record["s3_key"]
    assert content["modelAnswer"]["label"] == record["label"]
    assert list(content["modelAnswer"]["probabilities"].values()) == record["inferences"]


def assert_not_blank(png: Path) -> None:
    with Image.open(png) as shot:
        pixels = np.asarray(shot.convert("RGB"))
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    assert pixels.std() > 20 and colours > 50, f"screenshot looks blank: std {pixels.std():.1f}, {colours} colours"


def test_label_three_photos_by_click_and_key_then_undo(review_stack, review_server, staged_data, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the dev extra)")
    if CHROMIUM is None:
        pytest.skip("chromium not installed (scripts/install_test_tools.sh installs it)")
    _, state = review_stack
    s3 = state.client("s3")
    blends = training_pairs(staged_data, 4)
    items = queue_photos(state, [(NASTY_KEY, blends[0])] + [(f"photos/blend-{i}.png", b) for i, b in enumerate(blends[1:])])
    records = {item: json.loads(s3.get_object(Bucket=state.bucket, Key=f"review/{item}.json")["Body"].read()) for item in items}

    with playwright.sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=BROWSER_FLAGS,
            viewport={"width": 1100, "height": 800})
        page = context.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        page.goto(review_server)
        assert wait_shown(page, items[0]) == items[0], "the oldest photo comes first"
        assert page.text_content("#image-uri") == f"s3://{state.bucket}/{NASTY_KEY}"
        assert page.locator("#injected").count() == 0 and not dialogs
        assert page.text_content("#progress").startswith(f"0 reviewed of {len(items)}")
        assert page.locator("#probabilities tr").count() == len(records[items[0]]["labels"])

        page.click('button[data-label="bicycle"]')
        wait_shown(page, items[1])
        page.keyboard.press("2")
        wait_shown(page, items[2])
        page.keyboard.press("0")
        wait_shown(page, items[3])
        assert page.text_content("#progress").startswith(f"3 reviewed of {len(items)}")

        for item, label in zip(items, ("bicycle", "motorcycle", "unsure")):
            assert_one_answer(label_document(s3, state.bucket, item), label, records[item])

        page.keyboard.press("u")
        wait_shown(page, items[2])
        assert page.text_content("#progress").startswith(f"2 reviewed of {len(items)}")
        assert label_document(s3, state.bucket, items[2]) is None, "the undone answer is gone"
        assert label_document(s3, state.bucket, items[1]) is not None
        screenshot = tmp_path / "review.png"
        page.screenshot(path=str(screenshot))
        context.close()
    assert_not_blank(screenshot)
    if os.environ.get("SCONES_KEEP_SCREENSHOT"):
        shutil.copy(screenshot, os.environ["SCONES_KEEP_SCREENSHOT"])

    # A second reviewer disagrees on the first photo: both answers kept, the last one counts.
    ReviewStore(s3, state.bucket).answer(items[0], "motorcycle", "bob", datetime.now(timezone.utc), datetime.now(timezone.utc))
    answers = label_document(s3, state.bucket, items[0])["humanAnswers"]
    assert [(a["workerId"], a["answerContent"]["label"]) for a in answers] == [(REVIEWER, "bicycle"), ("bob", "motorcycle")]
    summary = summarize_reviews(s3, state.bucket)
    assert (summary.waiting, summary.answered, summary.answers, summary.reviewer_disagreements) == (len(items) - 2, 2, 3, 1)
    models = [records[item]["label"] for item in items[:2]]
    assert summary.agree == sum(m == "motorcycle" for m in models)
    assert sum(summary.confusions.values()) == sum(m != "motorcycle" for m in models)
    assert summary.median_wait_s is not None and summary.median_wait_s >= 0


def test_review_page_refuses_foreign_hosts_and_cross_site_writes(review_server):
    answer = f"{review_server}/api/items/anything/answer"
    assert http_status(f"{review_server}/api/queue", headers={"Host": "evil.example:80"}) == 403
    assert http_status(answer, b"label=bicycle", {"Content-Type": "application/x-www-form-urlencoded"}) == 403
    assert http_status(answer, b'{"label": "bicycle"}', {"Content-Type": "application/json",
                                                          "Origin": "http://evil.example"}) == 403
    assert http_status(answer, b'{"label": "bicycle"}', {"Content-Type": "application/json"}) == 404
    assert http_status(f"{review_server}/static/../../etc/passwd") == 404
    assert http_status(f"{review_server}/api/items/..%2Fcapture%2Fx") == 404


def test_train_includes_reviewed_photos(review_stack, staged_data, tmp_path):
    """Runs after the labelling test: its answers are what this training run adds."""
    _, state = review_stack
    s3 = state.client("s3")
    finals = [doc["humanAnswers"][-1]["answerContent"]["label"] for item in ReviewStore(s3, state.bucket).listing("labels/")
              if (doc := label_document(s3, state.bucket, item))]
    if not finals:
        pytest.skip("no labels/ documents: run with the labelling test")
    env = {**os.environ, "AWS_ENDPOINT_URL": state.aws_endpoint_url}
    run = subprocess.run([sys.executable, "-m", "scones.local.cli", "train", "--data", str(staged_data), "--out",
                          str(tmp_path), "--include-reviewed", f"s3://{state.bucket}/labels/", "--epochs", "1",
                          "--width", "8", "--ensemble", "1", "--quiet"], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    usable = [label for label in finals if label != "unsure"]
    per_class = Counter(line.split("\t")[1] for line in (staged_data / "train" / "train.lst").read_text().splitlines())
    trained_on = sum(n - max(1, round(n * DEFAULT_VAL_FRACTION)) for n in per_class.values())  # held out to validate
    assert f"reviewed photos: {len(usable)} added" in run.stdout
    assert f"on {trained_on + len(usable)} images" in run.stdout
    assert json.loads((tmp_path / "metrics.json").read_text())["hyperparameters"]["include_reviewed"].endswith("/labels/")
