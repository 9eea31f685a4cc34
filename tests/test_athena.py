"""Athena engine: the generated SQL runs unchanged on DuckDB over the corpus logs and agrees with the
local reader; the boto3 call flow runs against a local Athena stand-in in both of its wire protocols (moto 5.2.6
answers only the older `json` one)."""
from __future__ import annotations

import json

import pytest

from conftest import corpus_path
from iamgate.usage import athena

TABLE = "cloudtrail_db.cloudtrail_logs"
COLUMNS = {"eventSource": "VARCHAR", "eventName": "VARCHAR", "eventTime": "VARCHAR", "errorCode": "VARCHAR",
           "awsRegion": "VARCHAR", "eventType": "VARCHAR", "eventCategory": "VARCHAR",
           "userIdentity": "STRUCT(type VARCHAR, arn VARCHAR, invokedBy VARCHAR, "
                           "sessionContext STRUCT(sessionIssuer STRUCT(arn VARCHAR)))",
           "recipientAccountId": "VARCHAR", "requestParameters": "JSON",
           "resources": "STRUCT(ARN VARCHAR, accountId VARCHAR, type VARCHAR)[]"}
# Athena (Trino) functions DuckDB names differently; the query itself runs unchanged
TRINO_SHIMS = ("CREATE MACRO json_extract_scalar(j, p) AS json_extract_string(j, p)",
               "CREATE MACRO json_format(j) AS CAST(j AS VARCHAR)")


def detonation_logs():
    return corpus_path("e2e", "DataDog", "stratus-red-team", "docs", "detonation-logs")


def duckdb_rows(sql: str, logs=None, fmt: str = "array") -> list[tuple]:
    """The standard CloudTrail table (lowercase columns, `timestamp` partition) as a DuckDB view."""
    duckdb = pytest.importorskip("duckdb")
    con = duckdb.connect()
    for shim in TRINO_SHIMS:
        con.execute(shim)
    con.execute("CREATE SCHEMA cloudtrail_db")
    con.execute(f"""CREATE VIEW {TABLE} AS
        SELECT *, replace(substr(eventTime, 1, 10), '-', '/') AS "timestamp"
        FROM read_json('{logs or detonation_logs()}/*.json', format='{fmt}', columns={COLUMNS!r})""")
    return con.execute(sql).fetchall()


def test_query_shape():
    sql = athena.build_query(TABLE, "2024-08-01T00:00:00Z", "2024-08-03T00:00:00Z")
    assert "GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10" in sql
    assert "\"timestamp\" >= '2024/08/01'" in sql and "eventtime < '2024-08-03T00:00:00Z'" in sql
    ymd = athena.build_query(TABLE, "2024-08-01T00:00:00Z", None, "year-month-day")
    assert "concat(year, '-', month, '-', day) >= '2024-08-01'" in ymd
    with pytest.raises(ValueError):
        athena.build_query("db.t; DROP TABLE x", None, None)


def test_the_same_sql_on_duckdb_agrees_with_the_local_reader(catalog):
    from iamgate.usage._ct_agg import summarise
    from iamgate.usage.cloudtrail import CloudTrailUsage
    start, end = "2024-07-01T00:00:00Z", "2024-12-01T00:00:00Z"
    rows = duckdb_rows(athena.build_query(TABLE, start, end))
    via_sql = summarise(athena.rows_to_counts(rows), files=0, catalog=catalog)
    local, errors = CloudTrailUsage([str(detonation_logs())], start=start, end=end, catalog=catalog).scan()
    assert via_sql.events == local.events > 300
    assert {b.principal_arn: (b.used, b.denied) for b in via_sql.baselines} == \
           {b.principal_arn: (b.used, b.denied) for b in local.baselines}
    assert via_sql.unmapped == local.unmapped


def _header() -> list[str]:
    return list(athena.GROUP_COLUMNS) + ["events", "first_seen", "last_seen"]


@pytest.fixture()
def athena_env(monkeypatch):
    from fixtures.aws.helpers import aws_env
    aws_env(monkeypatch)

    def point_at(fake, protocol: str, tmp_path):
        import boto3
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # a new session reads AWS_DATA_PATH afresh
        monkeypatch.setenv("AWS_ENDPOINT_URL_ATHENA", fake.origin)
        if protocol == "json":
            from fixtures.aws.fake_athena import json_protocol_models
            monkeypatch.setenv("AWS_DATA_PATH", str(json_protocol_models(tmp_path / "models")))
        else:
            monkeypatch.delenv("AWS_DATA_PATH", raising=False)
    return point_at


def test_todays_botocore_speaks_rest_json_to_athena():
    """botocore 1.44.18 moved Athena to rest-json; moto 5.2.6 answers that with 404, hence the stand-in."""
    import boto3
    client = boto3.client("athena", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    assert client.meta.service_model.protocol == "rest-json"


@pytest.mark.parametrize("protocol", ["rest-json", "json"])
def test_boto3_flow_on_both_athena_protocols(protocol, athena_env, tmp_path, catalog):
    """The engine's calls, paged results and polling against a local Athena in either wire protocol;
    the rows are what the generated SQL returns on DuckDB over the corpus logs."""
    from fixtures.aws.fake_athena import FakeAthena
    rows = duckdb_rows(athena.build_query(TABLE, None, None))
    with FakeAthena([_header(), *rows], running_polls=2, page_size=3) as fake:
        athena_env(fake, protocol, tmp_path)
        src = athena.AthenaUsage(TABLE, "primary", "s3://athena-results/q/", start="2024-08-02", end="2024-08-02",
                                 catalog=catalog)
        summary, errors = src.scan()
    assert errors == []
    assert fake.protocols() == {protocol}
    ops = [op for _, op, _ in fake.calls]
    assert ops[0] == "StartQueryExecution" and ops.count("GetQueryExecution") == 3
    assert ops.count("GetQueryResults") == -(-(len(rows) + 1) // 3)  # every page read
    start = fake.calls[0][2]
    assert start["WorkGroup"] == "primary" and start["ResultConfiguration"] == {"OutputLocation": "s3://athena-results/q/"}
    assert "2024-08-02" in start["QueryString"]
    role = "arn:aws:iam::017622104382:role/stratus-red-team-ec2-steal-credentials-role"
    b = {b.principal_arn: b for b in summary.baselines}[role]
    assert set(b.used) == {"ec2:describeinstances"}
    assert b.sources == ({"kind": "cloudtrail", "events": summary.events, "engine": "athena"},)


@pytest.mark.parametrize("protocol", ["rest-json", "json"])
def test_usage_cloudtrail_engine_athena_end_to_end(protocol, athena_env, tmp_path, capsys):
    """`iamgate usage cloudtrail --engine athena` writes baselines from either protocol, and a failed query
    is an error (exit 2), never an empty pass."""
    from fixtures.aws.fake_athena import FakeAthena
    from iamgate.cli import main
    arn = "arn:aws:sts::111122223333:assumed-role/app/s"
    row = ["AssumedRole", arn, "arn:aws:iam::111122223333:role/app", "", "sqs.amazonaws.com", "PurgeQueue", "",
           "us-east-1", "AwsApiCall", "Management", 2, "2024-08-01T00:00:00Z", "2024-08-02T00:00:00Z"]
    out = tmp_path / "baselines"
    with FakeAthena([_header(), row]) as fake:
        athena_env(fake, protocol, tmp_path)
        code = main(["usage", "cloudtrail", "--engine", "athena", "--athena-table", TABLE,
                     "--athena-output", "s3://r/", "--out", str(out)])
    assert code == 0, capsys.readouterr()
    assert fake.protocols() == {protocol}
    written = [json.loads(p.read_text()) for p in out.rglob("*.json")]
    assert [sorted(b["used"]) for b in written if b.get("principal_arn", "").endswith(":role/app")] == \
        [["sqs:purgequeue"]]
    with FakeAthena([_header(), row], fail="TABLE_NOT_FOUND: cloudtrail_logs") as fake:
        athena_env(fake, protocol, tmp_path / "again")
        code = main(["usage", "cloudtrail", "--engine", "athena", "--athena-table", TABLE,
                     "--athena-output", "s3://r/", "--out", str(tmp_path / "none")])
    assert code == 2 and "TABLE_NOT_FOUND" in capsys.readouterr().err


def test_failed_query_is_reported_not_raised(catalog):
    import boto3
    from botocore.stub import ANY, Stubber
    client = boto3.client("athena", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    stub.add_response("start_query_execution", {"QueryExecutionId": "q-1"},
                      {"QueryString": ANY, "WorkGroup": "primary", "ResultConfiguration": {"OutputLocation": "s3://r/"}})
    stub.add_response("get_query_execution", {"QueryExecution": {"Status": {"State": "RUNNING"}}},
                      {"QueryExecutionId": "q-1"})
    stub.add_response("get_query_execution", {"QueryExecution": {"Status": {
        "State": "FAILED", "StateChangeReason": "TABLE_NOT_FOUND: cloudtrail_logs"}}}, {"QueryExecutionId": "q-1"})
    with stub:
        summary, errors = athena.AthenaUsage(TABLE, output="s3://r/", catalog=catalog, client=client).scan()
    assert summary.baselines == () and "TABLE_NOT_FOUND" in errors[0].message
    stub.assert_no_pending_responses()


def test_each_athena_client_gets_its_own_config(monkeypatch):
    """botocore writes the resolved attempt count into the Config's `retries`: with one shared
    Config the first client's AWS_MAX_ATTEMPTS stuck on every later client."""
    from fixtures.aws.helpers import aws_env
    aws_env(monkeypatch)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "4")
    first = athena.athena_client()
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    second = athena.athena_client()
    assert first.meta.config.retries["total_max_attempts"] == 4
    assert second.meta.config.retries["total_max_attempts"] == 1
    assert second.meta.config.retries["mode"] == "standard" and "iamgate/" in second.meta.config.user_agent_extra


def stubbed_query(rows):
    """A Stubber-backed Athena client whose one query succeeds with `rows` (None: Athena's NULL, no value)."""
    import boto3
    from botocore.stub import ANY, Stubber
    client = boto3.client("athena", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    stub.add_response("start_query_execution", {"QueryExecutionId": "q-1"},
                      {"QueryString": ANY, "WorkGroup": "primary", "ResultConfiguration": {"OutputLocation": "s3://r/"}})
    stub.add_response("get_query_execution", {"QueryExecution": {"Status": {"State": "SUCCEEDED"}}},
                      {"QueryExecutionId": "q-1"})
    stub.add_response("get_query_results", {"ResultSet": {"Rows": [
        {"Data": [{} if v is None else {"VarCharValue": str(v)} for v in r]} for r in [_header(), *rows]]}},
        {"QueryExecutionId": "q-1"})
    return client, stub


def test_an_accounts_window_is_the_span_of_its_own_logs_and_no_rows_is_an_error(catalog):
    """As for logs read directly (issue 11): an account seen in one minute of the table gets that
    minute, not the span of the whole query; a query that finds no records gives no usage."""
    def row(account, first, last):
        arn = f"arn:aws:sts::{account}:assumed-role/app/s"
        return ["AssumedRole", arn, f"arn:aws:iam::{account}:role/app", "", "ec2.amazonaws.com",
                "DescribeInstances", "", "us-east-1", "AwsApiCall", "Management", 3, first, last]
    client, stub = stubbed_query([row("111122223333", "2024-08-01T00:00:00Z", "2024-10-30T00:00:00Z"),
                                   row("444455556666", "2024-09-01T10:00:00Z", "2024-09-01T10:01:00Z")])
    with stub:
        summary, errors = athena.AthenaUsage(TABLE, output="s3://r/", catalog=catalog, client=client).scan()
    assert errors == []
    spans = {b.principal_arn.split(":")[4]: (b.window_start, b.window_end) for b in summary.baselines}
    assert spans["444455556666"] == ("2024-09-01T10:00:00Z", "2024-09-01T10:01:00Z")
    assert spans["111122223333"] == ("2024-08-01T00:00:00Z", "2024-10-30T00:00:00Z")
    client, stub = stubbed_query([])
    with stub:
        summary, errors = athena.AthenaUsage(TABLE, output="s3://r/", catalog=catalog, client=client).scan()
    assert summary.baselines == () and "no CloudTrail records" in errors[0].message


def test_a_later_refresh_queries_only_the_partitions_since_the_last(athena_env, tmp_path, capsys):
    """Issue 22: the state beside the baselines keeps the end of the last query; the next run's query starts
    there (partitions and event times), and its rows merge into the stored history."""
    from fixtures.aws.fake_athena import FakeAthena
    from iamgate.cli import main
    from iamgate.usage._ct_state import STATE_FILE
    row = ["AssumedRole", None, "arn:aws:iam::111122223333:role/app", "", "sqs.amazonaws.com", "PurgeQueue", "",
           "us-east-1", "AwsApiCall", "Management", 2, "2024-08-01T00:00:00Z", "2024-08-02T00:00:00Z"]
    out = tmp_path / "baselines"
    args = ["usage", "cloudtrail", "--engine", "athena", "--athena-table", TABLE, "--athena-output", "s3://r/",
            "--out", str(out)]
    queries = []
    for _ in range(2):
        with FakeAthena([_header(), row]) as fake:
            athena_env(fake, "rest-json", tmp_path)
            assert main(args) == 0, capsys.readouterr()
        queries.append(fake.calls[0][2]["QueryString"])
    through = json.loads((out / STATE_FILE).read_text())["athena"][TABLE]["through"]
    assert '"timestamp" >=' not in queries[0]
    assert f"\"timestamp\" >= '{through[:10].replace('-', '/')}'" not in queries[0]
    first_end = queries[0].split("eventtime < '", 1)[1][:20]
    assert f"eventtime >= '{first_end}'" in queries[1]
    assert f"\"timestamp\" >= '{first_end[:10].replace('-', '/')}'" in queries[1]
    doc = json.loads((out / "111122223333_role_app.json").read_text())
    assert doc["used"]["sqs:purgequeue"]["count"] == 4  # each run's rows merged (the stand-in does not filter)
