"""The base of every error the state machine matches.

Step Functions matches a Lambda failure on its `errorType`, which is the exception's
class NAME: subclasses here are named for the condition (ImageNotFound, ModelError, ...),
and the workflow's Retry/Catch clauses name them.
"""
from __future__ import annotations


class WorkflowError(Exception):
    """A failure a workflow step detected and named; the message says what and where."""
