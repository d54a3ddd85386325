"""`scones monitor report` on real traffic: the model server captures into a moto S3, the CLI
reads it back, and the HTML report is opened in a real headless chromium."""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import boto3
import numpy as np
import pytest
from PIL import Image

from scones.model.monitor.capture_reader import read_capture
from scones.model.monitor.drift import load_baseline

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BUCKET = "monitor-e2e"
ENDPOINT = "monitor-e2e-endpoint"
CAPTURE_URI = f"s3://{BUCKET}/datacapture/{ENDPOINT}"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BROWSER_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]
IMAGE_CHECK = """<script>window.addEventListener("load", () => {
  const images = [...document.images];
  document.body.dataset.images = images.length;
  document.body.dataset.broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).length;
});</script></body>"""


def images_of_test_split(staged_data: Path) -> list[tuple[str, bytes]]:
    class_names = json.loads((staged_data / "classes.json").read_text())
    rows = [line.split("\t") for line in (staged_data / "test" / "test.lst").read_text().splitlines()]
    return [(class_names[int(label)], (staged_data / "test" / path).read_bytes()) for _, label, path in rows]


def underexposed(png: bytes) -> bytes:
    """The same photo at 30 % brightness, like a night shot (how sure the model stays depends on the model)."""
    with Image.open(io.BytesIO(png)) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=float)
    buffer = io.BytesIO()
    Image.fromarray((pixels * 0.3).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def send(runtime, images: list[bytes]) -> list[list[float]]:
    return [json.loads(runtime.invoke_endpoint(EndpointName=ENDPOINT, ContentType="image/png", Body=body)["Body"].read())
            for body in images]


def wait_captured(s3, count: int, timeout_s: float = 45) -> None:
    deadline = time.monotonic() + timeout_s
    while (found := len(read_capture(s3, CAPTURE_URI).records)) < count:
        assert time.monotonic() < deadline, f"only {found} of {count} requests captured"
        time.sleep(0.5)


def expected_figures(responses: list[list[float]], class_names: list[str], threshold: float) -> dict:
    predicted = [class_names[int(np.argmax(r))] for r in responses]
    return {"captured_requests": len(responses),
            "class_counts": {name: predicted.count(name) for name in class_names},
            "below_threshold": sum(max(r) < threshold for r in responses)}


def run_report(out: Path, moto_url: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AWS_ENDPOINT_URL": moto_url, "SCONES_HOME": str(home), "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "scones.local.cli", "monitor", "report", "--capture", CAPTURE_URI,
                           "--out", str(out), *args], env=env, capture_output=True, text=True, timeout=180)


def open_in_chromium(html: Path, work: Path) -> tuple[Path, int, int]:
    """Screenshot the report, then load a copy that counts its images once loaded: (png, images, broken)."""
    screenshot = work / "screenshot.png"
    base = [CHROMIUM, *BROWSER_FLAGS, f"--user-data-dir={work / 'profile'}"]
    subprocess.run([*base, "--window-size=1280,3600", f"--screenshot={screenshot}", html.as_uri()],
                   check=True, capture_output=True, timeout=120)
    probe = html.with_name("image-check.html")
    probe.write_text(html.read_text().replace("</body>", IMAGE_CHECK))
    dom = subprocess.run([*base, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    probe.unlink()
    images, broken = (int(re.search(rf'data-{name}="(\d+)"', dom).group(1)) for name in ("images", "broken"))
    return screenshot, images, broken


def test_monitor_report_on_captured_traffic(
    moto_server, moto_session, start_model_server, model_artifact, staged_data, tmp_path, request
):
    s3 = moto_session.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    server = start_model_server(model_artifact, endpoint_name=ENDPOINT, capture_s3_uri=f"s3://{BUCKET}/datacapture",
                                capture_percent=100, env={"AWS_ENDPOINT_URL": moto_server})
    runtime = boto3.client("sagemaker-runtime", endpoint_url=server.url, region_name="us-east-1")
    baseline = load_baseline(model_artifact)
    class_names, threshold = list(baseline.class_names), baseline.threshold

    # Unshifted: the test split the baseline was recorded on, both classes.
    unshifted = send(runtime, [png for _, png in images_of_test_split(staged_data)])
    wait_captured(s3, len(unshifted))
    now = datetime.now(timezone.utc)
    malformed = ["{not json", json.dumps({"captureData": {}}), json.dumps({"eventVersion": "0"})]
    s3.put_object(Bucket=BUCKET, Key=f"datacapture/{ENDPOINT}/AllTraffic/{now:%Y/%m/%d/%H}/zz-broken.jsonl",
                  Body="\n".join(malformed).encode())
    s3.put_object(Bucket=BUCKET, Key="review/exec-1.json", Body=json.dumps({"reason": "ThresholdConfidenceNotMet"}))
    s3.put_object(Bucket=BUCKET, Key="failed/exec-2.json", Body=json.dumps({"error": "NotAnImage"}))
    unshifted_run = run_report(tmp_path / "unshifted", moto_server, tmp_path / "home",
                               "--baseline", str(model_artifact), "--bucket", BUCKET, "--fail-on-drift")
    assert unshifted_run.returncode == 0, unshifted_run.stdout + unshifted_run.stderr

    # Shifted: one class only, underexposed; read on its own with --since.
    time.sleep(0.05)
    split = datetime.now(timezone.utc)
    bicycles = [underexposed(png) for name, png in images_of_test_split(staged_data) if name == class_names[0]]
    shifted = send(runtime, bicycles)
    wait_captured(s3, len(unshifted) + len(shifted))
    shifted_run = run_report(tmp_path / "shifted", moto_server, tmp_path / "home",
                             "--baseline", str(model_artifact), "--since", split.isoformat(), "--fail-on-drift")
    assert shifted_run.returncode == 3, shifted_run.stdout + shifted_run.stderr
    assert "DRIFT DETECTED" in shifted_run.stdout and "report.html" in shifted_run.stdout

    figures = {}
    for name, responses, out in (("unshifted", unshifted, "unshifted"), ("shifted", shifted, "shifted")):
        summary = json.loads((tmp_path / out / "summary.json").read_text())
        figures[name] = summary
        for key, value in expected_figures(responses, class_names, threshold).items():
            assert summary[key] == value, (name, key)
        assert summary["malformed_lines"] == len(malformed)
    assert figures["unshifted"]["drift"]["drifted"] is False
    assert figures["unshifted"]["drift"]["ks_p_value"] > 0.01 and figures["unshifted"]["drift"]["chi2_p_value"] > 0.01
    assert figures["unshifted"]["outcomes"]["review"] == 1 and figures["unshifted"]["outcomes"]["failed"] == 1
    assert figures["unshifted"]["outcomes"]["failure_reasons"] == {"NotAnImage": 1}
    assert figures["unshifted"]["outcomes"]["human_review"]["waiting"] == 1  # review/exec-1.json, unanswered
    assert figures["shifted"]["drift"]["drifted"] is True
    assert figures["shifted"]["drift"]["chi2_p_value"] < 0.01
    print("\nDRIFT FIGURES", json.dumps({k: v["drift"] for k, v in figures.items()}, indent=1))

    if CHROMIUM is None:
        pytest.skip("chromium not installed (apt-get install chromium): HTML not checked in a browser")
    screenshot, images, broken = open_in_chromium(tmp_path / "shifted" / "report.html", tmp_path)
    assert images == 6 + min(12, len(shifted)) and broken == 0  # 5 charts + the reliability diagram, gallery
    with Image.open(screenshot) as shot:
        assert shot.size == (1280, 3600)
    keep = os.environ.get("SCONES_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(screenshot, keep)
