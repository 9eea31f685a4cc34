"""iamgate.usage.aws_errors: each failure judged per call (transient, principal, account-wide), bounded retries
that use the time left. Errors come from real botocore: a Stubber, and a local HTTP server on 127.0.0.1
answering with HTML 500s, 503s, a dropped connection and nothing at all."""
from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError
from botocore.parsers import ResponseParserError

from fixtures.aws.fake_access_analyzer import FakeAccessAnalyzer
from fixtures.aws.helpers import FakeClock, aws_env, stub_client
from iamgate.usage.aws_clients import Clients
from iamgate.usage.aws_errors import (
    ACCOUNT,
    PRINCIPAL,
    TRANSIENT,
    AccountError,
    Delays,
    OutOfTime,
    PrincipalError,
    Retry,
    Stopped,
    classify,
)


def client_error(code, status=400, message="m"):
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


@pytest.mark.parametrize("error, kind", [
    (client_error("ThrottlingException", 429), TRANSIENT),
    (client_error("Throttling", 400), TRANSIENT),
    (client_error("ServiceUnavailable", 503), TRANSIENT),
    (client_error("", 502), TRANSIENT),
    (client_error("InternalServerException", 500), TRANSIENT),
    (client_error("ExpiredTokenException", 400), ACCOUNT),
    (client_error("ExpiredToken", 403), ACCOUNT),
    (client_error("InvalidClientTokenId", 403), ACCOUNT),
    (client_error("AccessDenied", 403), PRINCIPAL),
    (client_error("NoSuchEntity", 404), PRINCIPAL),
    (client_error("ValidationException", 400), PRINCIPAL),
    (ResponseParserError("Unable to parse response (not JSON)"), TRANSIENT),
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), TRANSIENT),
    (NoCredentialsError(), ACCOUNT),
])
def test_classify(error, kind):
    assert classify(error, "Op").kind == kind
    assert classify(ValueError("a bug")) is None


def test_access_denied_on_the_job_api_itself_is_account_wide():
    f = classify(client_error("AccessDeniedException", 403, "not authorized"), "StartPolicyGeneration",
                 denied_is_account=True)
    assert f.kind == ACCOUNT and str(f) == "StartPolicyGeneration: AccessDeniedException: not authorized"


def test_retry_is_bounded_then_the_principal_step_fails():
    clock = FakeClock()
    calls = []

    def throttled():
        calls.append(1)
        raise client_error("ThrottlingException", 429, "Rate exceeded")

    retry = Retry(clock, delays=Delays(), attempts=4)
    with pytest.raises(PrincipalError) as e:
        retry.call("GetPolicy", throttled)
    assert len(calls) == 4 and clock.sleeps == [2.0, 3.0, 4.5]
    assert e.value.failure.kind == PRINCIPAL and e.value.failure.code == "ThrottlingException"
    assert str(e.value) == "GetPolicy: ThrottlingException: Rate exceeded"


def test_retry_stops_at_once_for_account_errors_and_uses_the_time_left():
    clock = FakeClock()
    with pytest.raises(AccountError) as e:
        Retry(clock).call("GetPolicy", lambda: (_ for _ in ()).throw(client_error("ExpiredTokenException")))
    assert isinstance(e.value, Stopped) and clock.sleeps == []
    retry = Retry(clock, deadline=clock.monotonic() + 3, delays=Delays())
    with pytest.raises(OutOfTime):
        retry.call("GetPolicy", lambda: (_ for _ in ()).throw(client_error("Throttling")), attempts=10)
    assert clock.sleeps == [2.0, 1.0]  # the second wait is cut to the one second left


def test_an_unexpected_reply_shape_is_transient_and_the_check_sees_each_reply():
    replies = iter([{}, {"jobDetails": {"status": "SUCCEEDED"}}])
    reply = Retry(FakeClock()).call("GetGeneratedPolicy", lambda: next(replies),
                                    check=lambda r: r["jobDetails"]["status"])
    assert reply["jobDetails"]["status"] == "SUCCEEDED"
    with pytest.raises(PrincipalError, match="UnexpectedResponse: the reply has an unexpected shape"):
        Retry(FakeClock(), attempts=2).call("GetGeneratedPolicy", dict, check=lambda r: r["jobDetails"])


def test_a_bug_is_not_hidden():
    with pytest.raises(ZeroDivisionError):
        Retry(FakeClock()).call("Op", lambda: 1 / 0)


def test_delays_scale_from_the_environment(monkeypatch):
    monkeypatch.setenv("IAMGATE_DELAY_SCALE", "0.01")
    assert Delays.from_env().poll_first == pytest.approx(0.05)
    monkeypatch.setenv("IAMGATE_DELAY_SCALE", "nonsense")
    assert Delays.from_env() == Delays()


def test_real_botocore_failures_from_a_local_server_are_retried(monkeypatch):
    """An HTML 500 (ResponseParserError in botocore), a 503, a dropped connection: all transient."""
    aws_env(monkeypatch)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's own retries off: iamgate's are under test
    with FakeAccessAnalyzer() as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL_ACCESSANALYZER", fake.url)
        aa = Clients("us-east-1").client("accessanalyzer")
        fake.inject("ListPolicyGenerations", fake.html(500), fake.status(503), fake.drop())
        failures = []
        retry = Retry(FakeClock(), on_retry=lambda f, d: failures.append(f.code))
        assert retry.call("ListPolicyGenerations", lambda: aa.list_policy_generations())["policyGenerations"] == []
    # botocore names an unparseable error page by its status
    assert failures == ["500", "ServiceUnavailable", "ConnectionClosedError"]


def test_stubber_client_errors(monkeypatch):
    aws_env(monkeypatch)
    clients = Clients("us-east-1")
    stub = stub_client(clients, "iam")
    stub.add_client_error("get_policy", "Throttling", "Rate exceeded", 400)
    stub.add_response("get_policy", {"Policy": {"DefaultVersionId": "v1"}}, {"PolicyArn": "arn:aws:iam::aws:policy/x"})
    stub.add_client_error("get_policy", "NoSuchEntity", "no such policy", 404)
    iam = clients.client("iam")
    retry = Retry(FakeClock())
    assert retry.call("GetPolicy", lambda: iam.get_policy(PolicyArn="arn:aws:iam::aws:policy/x"))["Policy"]
    with pytest.raises(PrincipalError, match="GetPolicy: NoSuchEntity: no such policy"):
        retry.call("GetPolicy", lambda: iam.get_policy(PolicyArn="arn:aws:iam::aws:policy/x"))
    stub.assert_no_pending_responses()
