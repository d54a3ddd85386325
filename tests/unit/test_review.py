"""The review store, page API, training samples and report figures over an in-process moto S3,
with review records written by the workflow's own record_outcome."""
from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

import boto3
import numpy as np
import pytest
from moto import mock_aws
from PIL import Image
from starlette.testclient import TestClient

from scones.lambdas.common.config import load_config
from scones.lambdas.record_outcome.records import record_outcome
from scones.model.review.app import create_app, parse_time
from scones.model.review.documents import InvalidAnswer, final_label, item_id_of
from scones.model.review.store import ImageUnavailable, ItemNotFound, ReviewStore
from scones.model.review.summary import summarize_reviews
from scones.model.review.training import reviewed_samples

BUCKET = "records"
CLASSES = ["bicycle", "motorcycle"]
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def queue_photo(s3, name: str, seed: int, probabilities: list[float], at: datetime, bucket: str = BUCKET) -> str:
    key = f"photos/{name}.png"
    s3.put_object(Bucket=bucket, Key=key, Body=png(seed))
    state = {"s3_bucket": bucket, "s3_key": key, "inferences": probabilities, "labels": CLASSES,
             "failure": {"Error": "ThresholdConfidenceNotMet", "Cause": "below the threshold"}}
    event = {"outcome": "review", "execution_id": f"arn:aws:states:us-east-1:123456789012:execution:wf:{name}",
             "execution_name": name, "state": state}
    record_outcome(event, s3, load_config({"BUCKET": BUCKET, "THRESHOLD": "0.93"}), at)
    return name


@pytest.fixture
def s3():
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        # written in reverse name order, so "oldest first" cannot come from sorting names
        for i, name in enumerate(["c-photo", "b-photo", "a-photo"]):
            queue_photo(client, name, i, [0.6, 0.4] if i != 1 else [0.2, 0.8], T0 + timedelta(seconds=i / 10))
        yield client


def test_queue_is_oldest_first_and_answers_leave_it(s3):
    store = ReviewStore(s3, BUCKET)
    assert [item for item, _ in store.queue().waiting] == ["c-photo", "b-photo", "a-photo"]
    store.answer("c-photo", "bicycle", "ana", T0, T0 + timedelta(seconds=3))
    state = store.queue()
    assert [item for item, _ in state.waiting] == ["b-photo", "a-photo"] and (state.total, state.answered) == (3, 1)
    assert [item for item, _ in store.queue(second_opinion_by="ben").waiting] == ["c-photo", "b-photo", "a-photo"]


def test_two_reviewers_are_kept_last_wins_and_undo_removes_only_its_answer(s3):
    store = ReviewStore(s3, BUCKET)
    first = store.answer("b-photo", "bicycle", "ana", T0, T0 + timedelta(seconds=2))
    store.answer("b-photo", "motorcycle", "ben", T0, T0 + timedelta(seconds=5))
    document, _ = store.label_document("b-photo")
    assert [a["workerId"] for a in document["humanAnswers"]] == ["ana", "ben"] and final_label(document) == "motorcycle"
    assert document["humanAnswers"][0]["timeSpentInSeconds"] == 2.0
    assert document["inputContent"]["modelAnswer"] == {"label": "motorcycle", "confidence": 0.8,
                                                       "probabilities": {"bicycle": 0.2, "motorcycle": 0.8}}
    store.undo("b-photo", "ana", first["humanAnswers"][0]["submissionTime"])
    assert [a["workerId"] for a in store.label_document("b-photo")[0]["humanAnswers"]] == ["ben"]
    with pytest.raises(InvalidAnswer):
        store.undo("b-photo", "ana", first["humanAnswers"][0]["submissionTime"])
    store.undo("b-photo", "ben", store.label_document("b-photo")[0]["humanAnswers"][0]["submissionTime"])
    assert store.label_document("b-photo") == (None, None), "no answers left: the photo is back in the queue"


def test_bad_answers_and_names_are_refused(s3):
    store = ReviewStore(s3, BUCKET)
    with pytest.raises(InvalidAnswer):
        store.answer("a-photo", "scooter", "ana", T0, T0)
    with pytest.raises(ItemNotFound):
        store.record("../capture/x")
    assert item_id_of("review/../x.json", "review/") is None and item_id_of("review/a/b.json", "review/") is None
    queue_photo(s3, "elsewhere", 9, [0.5, 0.5], T0)
    record = json.loads(s3.get_object(Bucket=BUCKET, Key="review/elsewhere.json")["Body"].read())
    s3.put_object(Bucket=BUCKET, Key="review/elsewhere.json", Body=json.dumps({**record, "s3_bucket": "other-bucket"}))
    with pytest.raises(ImageUnavailable, match="not in s3://records"):
        ReviewStore(s3, BUCKET).image_png("elsewhere")


def test_page_api_answers_and_refuses_cross_site_writes(s3):
    client = TestClient(create_app(ReviewStore(s3, BUCKET), "ana"), base_url="http://127.0.0.1:8090")
    page = client.get("/")
    assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/api/items/a-photo/image").content.startswith(b"\x89PNG")
    given = client.post("/api/items/a-photo/answer", json={"label": "unsure", "shown_at": "2000-01-01T00:00:00Z"})
    assert given.status_code == 200 and given.json()["answerContent"] == {"label": "unsure"}
    assert client.get("/api/queue").json()["answered"] == 1
    assert client.post("/api/items/a-photo/answer", json={"label": "<script>"}).status_code == 400
    assert client.post("/api/items/nope/answer", json={"label": "bicycle"}).status_code == 404
    assert client.post("/api/items/a-photo/answer", content=b"label=bicycle",
                       headers={"content-type": "application/x-www-form-urlencoded"}).status_code == 403
    assert client.post("/api/items/a-photo/undo", json={"submissionTime": given.json()["submissionTime"]}).json() == {
        "remaining_answers": 0}
    assert client.get("/api/queue", headers={"host": "attacker.example"}).status_code == 403


def test_parse_time_keeps_the_page_clock_within_a_day():
    now = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)
    assert parse_time("2026-05-01T11:59:50Z", now) == now - timedelta(seconds=10)
    assert parse_time("2026-05-02T00:00:00Z", now) == now and parse_time("yesterday", now) == now
    assert parse_time("2026-04-01T00:00:00+00:00", now) == now


def test_reviewed_samples_leave_out_unsure_and_test_images(s3):
    store = ReviewStore(s3, BUCKET)
    for item, label in (("a-photo", "motorcycle"), ("b-photo", "bicycle"), ("c-photo", "unsure")):
        store.answer(item, label, "ana", T0, T0)
    test_split = np.stack([np.asarray(Image.open(io.BytesIO(png(0))))]).transpose(0, 3, 1, 2)  # c-photo's pixels
    store.answer("c-photo", "bicycle", "ben", T0, T0)  # now usable, but it is a test image
    samples = reviewed_samples(s3, f"s3://{BUCKET}/labels/", CLASSES, test_split, 32)
    assert samples.labels == [1, 0] and samples.images[0].shape == (32, 32, 3)
    assert dict(samples.skipped) == {"same as a test image": 1}
    assert samples.describe(CLASSES).startswith("reviewed photos: 2 added (bicycle 1, motorcycle 1)")


def test_summary_counts_queue_agreement_and_confusions(s3):
    store = ReviewStore(s3, BUCKET)
    store.answer("c-photo", "motorcycle", "ana", T0, T0 + timedelta(minutes=4))  # model said bicycle
    store.answer("b-photo", "motorcycle", "ana", T0, T0 + timedelta(minutes=2))  # model said motorcycle
    store.answer("b-photo", "bicycle", "ben", T0, T0 + timedelta(minutes=3))
    summary = summarize_reviews(s3, BUCKET)
    assert (summary.waiting, summary.answered, summary.answers, summary.reviewer_disagreements) == (1, 2, 3, 1)
    assert (summary.agree, summary.disagree) == (0, 2)
    assert dict(summary.confusions) == {("bicycle", "motorcycle"): 1, ("motorcycle", "bicycle"): 1}
    assert summary.median_wait_s == pytest.approx((240 + 120 - 0.1) / 2)
    assert dict(summary.rows())["review queue"] == "1 waiting, 2 answered, median wait 3.0 min"
