"""Review figures for the monitoring report: the queue, and what the people's answers say about the model."""
from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .documents import LABELS_PREFIX, REVIEW_PREFIX, UNSURE, answered_labels, final_label, model_label, reviewers_disagree
from .store import ReviewStore


@dataclass
class ReviewSummary:
    waiting: int = 0
    answered: int = 0
    waits_s: list[float] = field(default_factory=list)  # record written → first answer, per answered photo
    answers: int = 0
    unsure: int = 0
    agree: int = 0  # final human label == the model's label
    disagree: int = 0  # final human label is another class
    reviewer_disagreements: int = 0  # photos whose reviewers gave different labels
    confusions: Counter = field(default_factory=Counter)  # (model label, human label) → photos

    @property
    def median_wait_s(self) -> float | None:
        return statistics.median(self.waits_s) if self.waits_s else None

    @property
    def agreement(self) -> float | None:
        judged = self.agree + self.disagree
        return self.agree / judged if judged else None

    def to_json(self) -> dict:
        return {
            "waiting": self.waiting, "answered": self.answered, "median_wait_s": self.median_wait_s,
            "answers": self.answers, "unsure": self.unsure, "agreement_with_model": self.agreement,
            "reviewer_disagreements": self.reviewer_disagreements,
            "confusions": [{"model": m, "human": h, "photos": n} for (m, h), n in self.confusions.most_common()],
        }

    def rows(self) -> list[tuple[str, str]]:
        """(figure, value) pairs for the report's summary table."""
        wait = "n/a" if self.median_wait_s is None else f"{self.median_wait_s / 60:.1f} min"
        agreement = "n/a" if self.agreement is None else f"{self.agreement:.0%} of {self.agree + self.disagree}"
        confused = ", ".join(f"{m} → {h} ×{n}" for (m, h), n in self.confusions.most_common()) or "none"
        return [
            ("review queue", f"{self.waiting} waiting, {self.answered} answered, median wait {wait}"),
            ("reviewers agree with the model", f"{agreement} (unsure {self.unsure}, "
                                               f"reviewers disagreeing on {self.reviewer_disagreements} photo(s))"),
            ("model confuses (model → people)", confused),
        ]


def _first_wait_s(document: dict) -> float | None:
    try:
        recorded = datetime.fromisoformat(document["inputContent"]["recordedAt"])
        first = datetime.fromisoformat(document["humanAnswers"][0]["submissionTime"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return max((first - recorded).total_seconds(), 0.0)


def summarize_reviews(s3: Any, bucket: str) -> ReviewSummary:
    """Reads the review/ listing and every label document under labels/."""
    store = ReviewStore(s3, bucket)
    records, labelled = store.listing(REVIEW_PREFIX), store.listing(LABELS_PREFIX)
    summary = ReviewSummary(waiting=len(set(records) - set(labelled)))
    for item in labelled:
        document = store.label_document(item)[0] or {}
        final, model = final_label(document), model_label(document)
        if final is None:
            continue
        summary.answered += 1
        summary.answers += len(answered_labels(document))
        summary.reviewer_disagreements += reviewers_disagree(document)
        wait = _first_wait_s(document)
        if wait is not None:
            summary.waits_s.append(wait)
        if final == UNSURE:
            summary.unsure += 1
        elif final == model:
            summary.agree += 1
        else:
            summary.disagree += 1
            summary.confusions[(str(model), final)] += 1
    return summary
