"""Least privilege: no `*` action, and each function reaches only its own resources."""
from __future__ import annotations

import pytest

from scones.local.deploy.iam_policies import (
    AccountContext,
    actions_of,
    function_policy,
    state_machine_policy,
    trust_policy,
)
from scones.local.deploy.lambda_package import FUNCTIONS

CTX = AccountContext(partition="aws", region="eu-west-1", account="111122223333")
LOGS = "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/lambda/s-fn:*"


def policy(function: str) -> dict:
    return function_policy(function, CTX, log_group="/aws/lambda/s-fn", bucket="imgs", endpoint_name="My-Endpoint")


def grants(document: dict) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for statement in document["Statement"]:
        assert statement["Effect"] == "Allow"
        for action in statement["Action"]:
            found.setdefault(action, []).extend(statement["Resource"])
    return found


@pytest.mark.parametrize("function", FUNCTIONS)
def test_no_wildcard_action_and_logs_only_to_its_own_group(function):
    document = policy(function)
    assert all("*" not in action for action in actions_of(document))
    assert grants(document)["logs:PutLogEvents"] == [LOGS]
    assert all(resource != "*" for resources in grants(document).values() for resource in resources)


def test_each_function_gets_only_what_it_needs():
    assert grants(policy("serialize_image")) == {
        "logs:CreateLogStream": [LOGS], "logs:PutLogEvents": [LOGS], "s3:GetObject": ["arn:aws:s3:::imgs/*"]}
    assert grants(policy("classify_image"))["sagemaker:InvokeEndpoint"] == [
        "arn:aws:sagemaker:eu-west-1:111122223333:endpoint/my-endpoint"]
    assert set(grants(policy("filter_inferences"))) == {"logs:CreateLogStream", "logs:PutLogEvents"}
    assert grants(policy("record_outcome"))["s3:PutObject"] == [
        "arn:aws:s3:::imgs/review/*", "arn:aws:s3:::imgs/failed/*"]
    assert "s3:GetObject" not in grants(policy("record_outcome"))


def test_state_machine_may_invoke_only_the_given_functions_and_write_failed_records():
    arns = ["arn:aws:lambda:eu-west-1:111122223333:function:b", "arn:aws:lambda:eu-west-1:111122223333:function:a"]
    assert grants(state_machine_policy(arns, CTX, bucket="imgs")) == {
        "lambda:InvokeFunction": sorted(arns), "s3:PutObject": ["arn:aws:s3:::imgs/failed/*"]}


def test_trust_policy_names_the_service():
    assert trust_policy("states.amazonaws.com")["Statement"][0]["Principal"] == {"Service": "states.amazonaws.com"}


def test_unknown_function_has_no_policy():
    with pytest.raises(ValueError, match="no policy"):
        policy("mine_bitcoin")
