"""The stack of infra/loyalty.yaml created in the local AWS (moto), and a daily run against what it made.

moto's CloudFormation creates the buckets, tables, topics, queues, roles, the ECS cluster and task
definition and the Lambda function; it skips (with a warning) the SES identity, configuration set and
event destination, topic and queue policies, the SNS subscription, the secret, the alarms and the
function URL, and ignores point-in-time recovery and TTL. Those are checked on the template here and
by cfn-lint (``make lint``); infra/README.md lists them.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from cfnlint.decode import cfn_yaml  # type: ignore[import-untyped]  # cfn-lint ships no type information

from flows.daily_run import daily_run
from tests.conftest import REGION, REPO_ROOT
from tests.integration.test_daily_run import _lapsed_shop
from tests.shops import write_shop

# moto warns of each resource type it skips (listed above), on every stack call
pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse .* not supported by moto:UserWarning")

TEMPLATE = REPO_ROOT / "infra" / "loyalty.yaml"
AS_OF = date(2024, 6, 1)
MORNING = datetime(2024, 6, 1, 3, 0, tzinfo=UTC)
SENDER = "hello@shop.example.com"
# moto has no AWS::Lambda::Url: the test stands a fixed URL in for the function URL's attribute
FUNCTION_URL = "https://unsubscribe.lambda-url.eu-central-1.on.aws/"


def _template() -> dict[str, Any]:
    """The template as plain JSON (the short-form tags expanded)."""
    template: dict[str, Any] = json.loads(json.dumps(cfn_yaml.load(str(TEMPLATE))))
    return template


def _without_function_url(node: Any) -> Any:
    """The template with every reference to the function URL's attribute replaced by ``FUNCTION_URL``."""
    if isinstance(node, dict):
        if node.get("Fn::GetAtt") == ["UnsubscribeUrl", "FunctionUrl"]:
            return FUNCTION_URL
        return {key: _without_function_url(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_without_function_url(value) for value in node]
    if isinstance(node, str):
        return node.replace("${UnsubscribeUrl.FunctionUrl}", FUNCTION_URL)
    return node


def _client(service: str) -> Any:
    return boto3.client(service, region_name=REGION)  # type: ignore[call-overload]


@pytest.fixture
def stack(aws: str) -> dict[str, str]:
    """Create the stack in the local AWS; return its outputs."""
    s3 = _client("s3")
    s3.create_bucket(Bucket="loyalty-code", CreateBucketConfiguration={"LocationConstraint": REGION})
    s3.put_object(Bucket="loyalty-code", Key="loyalty-unsubscribe.zip", Body=b"PK\x05\x06" + bytes(18))
    template = _template()
    del template["Resources"]["UnsubscribeUrl"]
    parameters = {
        "ShopName": "Kot & Pies",
        "SenderAddress": SENDER,
        "SenderDomain": "shop.example.com",
        "RetentionDays": "30",
        "WorkerImage": "example.com/loyalty-flows:1",
        "PrefectApiUrl": "https://prefect.example.com/api",
        "UnsubscribeCodeBucket": "loyalty-code",
    }
    cloudformation = _client("cloudformation")
    cloudformation.create_stack(
        StackName="loyalty",
        TemplateBody=json.dumps(_without_function_url(template)),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    created = cloudformation.describe_stacks(StackName="loyalty")["Stacks"][0]
    assert created["StackStatus"] == "CREATE_COMPLETE"
    return {o["OutputKey"]: o["OutputValue"] for o in created["Outputs"]}


def test_the_stack_creates_private_encrypted_buckets_with_run_folders_expiring(stack: dict[str, str]) -> None:
    s3 = _client("s3")
    for bucket in (stack["DataBucketName"], stack["RunBucketName"]):
        encryption = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
        assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert stack["LoyaltyData"] == f"s3://{stack['DataBucketName']}/exports/"
    # moto ignores the public access block and the lifecycle: the template must set them
    resources = _template()["Resources"]
    [rule] = resources["RunBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    assert (rule["Status"], rule["ExpirationInDays"]) == ("Enabled", {"Ref": "RetentionDays"})
    for bucket in ("DataBucket", "RunBucket"):
        block = resources[bucket]["Properties"]["PublicAccessBlockConfiguration"]
        assert set(block.values()) == {True} and len(block) == 4


def test_the_tables_have_the_keys_the_code_uses_and_the_ledger_an_index_by_run(stack: dict[str, str]) -> None:
    dynamodb = _client("dynamodb")
    ledger = dynamodb.describe_table(TableName=stack["LedgerTableName"])["Table"]
    state = dynamodb.describe_table(TableName=stack["StateTableName"])["Table"]
    assert ledger["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert state["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]
    [index] = ledger["GlobalSecondaryIndexes"]
    assert (index["IndexName"], index["KeySchema"]) == (
        stack["LedgerRunIdIndexName"],
        [{"AttributeName": "run_id", "KeyType": "HASH"}],
    )
    assert (
        ledger["BillingModeSummary"]["BillingMode"] == state["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    )
    # moto ignores these two: the template must ask for them
    for table in ("LedgerTable", "StateTable"):
        properties = _template()["Resources"][table]["Properties"]
        assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert properties["TimeToLiveSpecification"]["Enabled"] is True


def test_feedback_reaches_a_queue_with_a_dead_letter_queue_only_from_the_ses_topic(stack: dict[str, str]) -> None:
    sqs = _client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=stack["FeedbackQueueUrl"], AttributeNames=["All"])["Attributes"]
    dead_letters = sqs.get_queue_attributes(QueueUrl=stack["FeedbackDeadLetterQueueUrl"], AttributeNames=["QueueArn"])[
        "Attributes"
    ]
    assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"] == dead_letters["QueueArn"]
    topics = {t["TopicArn"] for t in _client("sns").list_topics()["Topics"]}
    assert {stack["FeedbackTopicArn"], stack["OperatorsTopicArn"]} <= topics
    assert json.loads(stack["LoyaltyFeedbackTopicArns"]) == [stack["FeedbackTopicArn"]]
    # moto skips the policy, the subscription and the SES event destination: the template must hold them
    resources = _template()["Resources"]
    [statement] = resources["FeedbackQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Ref": "FeedbackTopic"}}}
    destination = resources["ConfigurationSetEvents"]["Properties"]["EventDestination"]
    assert sorted(destination["MatchingEventTypes"]) == ["bounce", "complaint", "delivery"]
    assert destination["SnsDestination"] == {"TopicARN": {"Ref": "FeedbackTopic"}}
    assert resources["FeedbackSubscription"]["Properties"]["Endpoint"] == {"Fn::GetAtt": ["FeedbackQueue", "Arn"]}


def test_the_worker_may_send_email_only_as_the_sender(stack: dict[str, str]) -> None:
    # moto keeps an inline policy from a template as Python's repr of it: the template is read instead
    [policy] = _template()["Resources"]["TaskRole"]["Properties"]["Policies"]
    statements = policy["PolicyDocument"]["Statement"]
    email = [s for s in statements if "ses:SendRawEmail" in s["Action"]]
    assert email == [
        {
            "Sid": "SendEmailAsTheSenderOnly",
            "Effect": "Allow",
            "Action": "ses:SendRawEmail",
            "Resource": "*",
            "Condition": {"StringEquals": {"ses:FromAddress": {"Ref": "SenderAddress"}}},
        }
    ]
    # SMS to phone numbers only: Publish has no phone-number resource, so every topic ARN is denied instead
    sms = [s for s in statements if "sns:Publish" in s["Action"]]
    assert [(s["Effect"], s["Resource"]) for s in sms] == [
        ("Allow", "*"),
        ("Deny", {"Fn::Sub": "arn:${AWS::Partition}:sns:*:*:*"}),
    ]
    # the worker hands its flow-run tasks its own two roles, no other role of the account
    passing = _template()["Resources"]["WorkerPassesItsRoles"]["Properties"]
    [pass_role] = passing["PolicyDocument"]["Statement"]
    assert pass_role["Action"] == "iam:PassRole"
    assert pass_role["Resource"] == [
        {"Fn::GetAtt": [role, "Arn"]} for role in ("TaskRole", "ExecutionRole", "OpsNotifierRole")
    ]
    role = stack["TaskRoleArn"].rsplit("/", 1)[1]
    # moto attaches the role's inline policy; it skips a separate AWS::IAM::RolePolicy (cfn-lint checks that one)
    assert policy["PolicyName"] in _client("iam").list_role_policies(RoleName=role)["PolicyNames"]
    definition = _client("ecs").describe_task_definition(taskDefinition=stack["WorkerTaskDefinitionArn"])
    [container] = definition["taskDefinition"]["containerDefinitions"]
    assert container["command"][:3] == ["prefect", "worker", "start"] and "ecs" in container["command"]
    environment = {
        e["name"]: e.get("value") for e in container["environment"]
    }  # moto: no value from a skipped resource
    assert environment["LOYALTY_STATE_BACKEND"] == "dynamodb"
    assert environment["LOYALTY_OUTPUT_DIR"] == f"s3://{stack['RunBucketName']}/runs"
    assert environment["LOYALTY_LEDGER_TABLE"] == stack["LedgerTableName"]
    assert environment["LOYALTY_UNSUBSCRIBE_BASE_URL"] == f"{FUNCTION_URL}unsubscribe"


def test_the_template_alarms_on_bounces_complaints_dead_letters_and_sms_spend() -> None:
    """moto creates no alarms from a template: what each watches is read from the template."""
    resources = _template()["Resources"]
    alarms = {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    watched = {
        name: (p.get("MetricName") or p["Metrics"][0]["MetricStat"]["Metric"]["MetricName"], p["Threshold"])
        for name, p in alarms.items()
    }
    assert sorted(watched.values()) == [
        ("ApproximateNumberOfMessagesVisible", 0),
        ("Reputation.BounceRate", 0.05),
        ("Reputation.ComplaintRate", 0.001),
        ("SMSMonthToDateSpentUSD", 0.8),
    ]
    assert alarms["SmsSpendAlarm"]["Metrics"][1]["Expression"] == {"Fn::Sub": "spent / ${SmsMonthlySpendLimit}"}
    assert all(p["AlarmActions"] == [{"Ref": "OperatorsTopic"}] for p in alarms.values())
    secret = resources["SigningSecret"]["Properties"]["GenerateSecretString"]
    assert secret["PasswordLength"] >= 32


@pytest.mark.usefixtures("prefect_harness", "win_back_only")
def test_a_daily_run_on_the_stack_sends_and_records_in_its_tables(
    stack: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Data from the stack's bucket, run folders in its run bucket, ledger and state in its tables."""
    shop = write_shop(_lapsed_shop(6), tmp_path / "shop")
    for file in shop.iterdir():
        _client("s3").upload_file(str(file), stack["DataBucketName"], f"exports/{file.name}")
    monkeypatch.setenv("LOYALTY_DATA", stack["LoyaltyData"])
    monkeypatch.setenv("LOYALTY_STATE_BACKEND", "dynamodb")
    monkeypatch.setenv("LOYALTY_LEDGER_TABLE", stack["LedgerTableName"])
    monkeypatch.setenv("LOYALTY_STATE_TABLE", stack["StateTableName"])
    monkeypatch.setenv("LOYALTY_FEEDBACK_QUEUE_URL", stack["FeedbackQueueUrl"])
    monkeypatch.setenv("LOYALTY_FEEDBACK_TOPIC_ARNS", stack["LoyaltyFeedbackTopicArns"])
    monkeypatch.setenv("LOYALTY_SIGNING_SECRET", "the-stack-secret-0123456789abcdef")  # moto makes no secret
    monkeypatch.setenv("LOYALTY_OUTPUT_DIR", f"s3://{stack['RunBucketName']}/runs")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the run's mirror of its folder

    summary = daily_run(as_of=AS_OF, now=MORNING)

    assert summary.sent >= 1
    folder = _client("s3").list_objects_v2(Bucket=stack["RunBucketName"], Prefix=f"runs/{AS_OF}/")
    kept = {o["Key"].removeprefix(f"runs/{AS_OF}/") for o in folder.get("Contents", [])}
    assert {"plan/plan.parquet", "summary.json", "delivery/outcomes-00001.parquet"} <= kept
    dynamodb = _client("dynamodb")
    ledger = dynamodb.scan(TableName=stack["LedgerTableName"], ConsistentRead=True)["Items"]
    assert Counter(i["status"]["S"] for i in ledger) == {"sent": summary.sent}
    [run_id] = {i["run_id"]["S"] for i in ledger}
    by_run = dynamodb.query(
        TableName=stack["LedgerTableName"],
        IndexName=stack["LedgerRunIdIndexName"],
        KeyConditionExpression="run_id = :r",
        ExpressionAttributeValues={":r": {"S": run_id}},
    )["Items"]
    assert len(by_run) == summary.sent
    state = dynamodb.scan(TableName=stack["StateTableName"], ConsistentRead=True)["Items"]
    history = {i["customer_id"]["S"] for i in state if i["pk"]["S"].startswith("HIST#")}
    assert len(history) == summary.sent
