"""deploy_stack / destroy_stack against a real moto server, through the public boto3 API only."""
from __future__ import annotations

import json

import pytest

from scones.local.deploy.stack import StackConfig, deploy_stack, destroy_stack, function_name, role_name
from scones.local.deploy.iam_policies import actions_of
from scones.local.deploy.lambda_package import FUNCTIONS

pytestmark = pytest.mark.integration

CONFIG = StackConfig(
    stack_name="deploytest", bucket="deploytest-images", endpoint_name="deploytest-classifier",
    class_names=("bicycle", "motorcycle"), threshold=0.9,
    lambda_environment={"AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": "http://127.0.0.1:8080"},
    tags={"project": "scones"},
)


@pytest.fixture
def deployed(moto_session):
    outputs = deploy_stack(moto_session, CONFIG)
    yield outputs
    destroy_stack(moto_session, CONFIG.stack_name)


def test_deploy_creates_functions_with_their_environment(moto_session, deployed):
    lam = moto_session.client("lambda")
    for function in FUNCTIONS:
        config = lam.get_function_configuration(FunctionName=function_name("deploytest", function))
        assert config["FunctionArn"] == deployed.function_arns[function]
        assert config["Handler"] == f"lambdas.{function}.handler.lambda_handler"
        assert config["Role"] == deployed.role_arns[function]
        assert config["Environment"]["Variables"] == {
            "ENDPOINT_NAME": "deploytest-classifier", "CLASS_NAMES": "bicycle,motorcycle", "THRESHOLD": "0.9",
            "BUCKET": "deploytest-images", "REVIEW_PREFIX": "review/", "FAILED_PREFIX": "failed/",
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": "http://127.0.0.1:8080"}
        tags = lam.list_tags(Resource=config["FunctionArn"])["Tags"]
        assert tags["scones:stack"] == "deploytest" and tags["project"] == "scones"
    groups = moto_session.client("logs").describe_log_groups(logGroupNamePrefix="/aws/lambda/deploytest-")
    assert len(groups["logGroups"]) == len(FUNCTIONS)


def test_state_machine_definition_is_rendered_and_tagged(moto_session, deployed):
    sfn = moto_session.client("stepfunctions")
    machine = sfn.describe_state_machine(stateMachineArn=deployed.state_machine_arn)
    assert "${" not in machine["definition"]
    states = json.loads(machine["definition"])["States"]
    assert states["SerializeImage"]["Parameters"]["FunctionName"] == deployed.function_arns["serialize_image"]
    assert machine["roleArn"] == deployed.role_arns["state_machine"]
    tags = sfn.list_tags_for_resource(resourceArn=deployed.state_machine_arn)["tags"]
    assert {"key": "scones:stack", "value": "deploytest"} in tags


def test_bucket_exists_tagged_and_private(moto_session, deployed):
    s3 = moto_session.client("s3")
    assert {"Key": "scones:stack", "Value": "deploytest"} in s3.get_bucket_tagging(Bucket=deployed.bucket)["TagSet"]
    assert s3.get_public_access_block(Bucket=deployed.bucket)["PublicAccessBlockConfiguration"]["BlockPublicAcls"]


def test_role_policies_have_no_wildcard_action(moto_session, deployed):
    iam = moto_session.client("iam")
    for owner in (*FUNCTIONS, "workflow"):
        name = role_name("deploytest", owner)
        document = iam.get_role_policy(RoleName=name, PolicyName=name)["PolicyDocument"]
        assert all("*" not in action for action in actions_of(document)), name
    workflow = iam.get_role_policy(RoleName=role_name("deploytest", "workflow"),
                                   PolicyName=role_name("deploytest", "workflow"))["PolicyDocument"]
    assert workflow["Statement"][0]["Resource"] == sorted(deployed.function_arns.values())


def test_second_run_changes_nothing_unless_something_changed(moto_session, deployed):
    calls: list[str] = []
    moto_session.events.register("before-call.*.*", lambda model, **_: calls.append(model.name))
    assert deploy_stack(moto_session, CONFIG) == deployed
    writes = [c for c in calls if not c.startswith(("Get", "List", "Describe", "Head"))]
    assert set(writes) <= {"TagResource", "PutBucketTagging", "PutBucketNotificationConfiguration"}, writes

    calls.clear()
    deploy_stack(moto_session, StackConfig(**{**CONFIG.__dict__, "threshold": 0.5}))
    assert calls.count("UpdateFunctionConfiguration") == len(FUNCTIONS)
    assert "UpdateFunctionCode" not in calls and "UpdateStateMachine" not in calls
    name = function_name("deploytest", "filter_inferences")
    variables = moto_session.client("lambda").get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    assert variables["THRESHOLD"] == "0.5"


def test_destroy_removes_everything_and_is_safe_to_rerun(moto_session):
    outputs = deploy_stack(moto_session, CONFIG)
    moto_session.client("s3").put_object(Bucket=outputs.bucket, Key="review/x.json", Body=b"{}")
    deleted = destroy_stack(moto_session, "deploytest")
    assert f"state machine {outputs.state_machine_arn}" in deleted and "bucket deploytest-images" in deleted
    assert len([d for d in deleted if d.startswith("role ")]) == len(FUNCTIONS) + 2  # + workflow, events
    assert "event rule deploytest-incoming" in deleted
    lam = moto_session.client("lambda")
    assert not [f for f in lam.list_functions()["Functions"] if f["FunctionName"].startswith("deploytest-")]
    roles = moto_session.client("iam").list_roles()["Roles"]
    assert not [r for r in roles if r["RoleName"].startswith("deploytest-")]
    assert "deploytest-images" not in [b["Name"] for b in moto_session.client("s3").list_buckets()["Buckets"]]
    assert destroy_stack(moto_session, "deploytest") == []


def test_photos_under_incoming_trigger_the_workflow_through_eventbridge(moto_session, deployed):
    events, iam = moto_session.client("events"), moto_session.client("iam")
    rule = events.describe_rule(Name="deploytest-incoming")
    pattern = json.loads(rule["EventPattern"])
    assert rule["State"] == "ENABLED" and pattern["detail"]["object"]["key"] == [{"prefix": "incoming/"}]
    assert pattern["detail"]["bucket"]["name"] == ["deploytest-images"]
    [target] = events.list_targets_by_rule(Rule="deploytest-incoming")["Targets"]
    assert target["Arn"] == deployed.state_machine_arn and target["RoleArn"] == deployed.role_arns["events"]
    assert set(target["InputTransformer"]["InputPathsMap"].values()) == {"$.detail.bucket.name", "$.detail.object.key"}
    name = role_name("deploytest", "events")
    policy = iam.get_role_policy(RoleName=name, PolicyName=name)["PolicyDocument"]
    assert actions_of(policy) == ["states:StartExecution"]
    assert policy["Statement"][0]["Resource"] == [deployed.state_machine_arn]
