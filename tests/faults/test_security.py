"""Kafka with SASL/SCRAM over TLS: the SDK, the sink and the admin paths authenticate; bad credentials get nowhere."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from polling import eventually

import fleetlog
from fleetlog import query
from fleetlog.config import Settings
from fleetlog.localkafka import LocalKafka, free_port
from fleetlog.stack import PROCESSOR, SINK, LocalStack

USER, PASSWORD = "fleetlog", "scram-s3cret"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(directory: Path) -> tuple[Path, Path]:
    """A throwaway CA and a broker certificate for 127.0.0.1 (PEM, as Kafka reads it)."""
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=fleetlog-test-ca",
        cwd=directory,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "broker.key",
        "-out",
        "broker.csr",
        "-subj",
        "/CN=127.0.0.1",
        cwd=directory,
    )
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        "broker.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "broker.pem",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
        cwd=directory,
    )
    _openssl("pkcs8", "-topk8", "-nocrypt", "-in", "broker.key", "-out", "broker.pk8", cwd=directory)
    keystore = directory / "keystore.pem"
    keystore.write_text((directory / "broker.pk8").read_text() + (directory / "broker.pem").read_text())
    return directory / "ca.pem", keystore


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalKafka, Path]]:
    certs = tmp_path_factory.mktemp("certs")
    ca, keystore = make_certificates(certs)
    port = free_port()
    props = certs / "sasl_ssl.properties"
    props.write_text(
        f"""
listeners=SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1}
advertised.listeners=SASL_SSL://127.0.0.1:{port}
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
inter.broker.listener.name=SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule \
required username="{USER}" password="{PASSWORD}";
ssl.keystore.type=PEM
ssl.keystore.location={keystore}
ssl.truststore.type=PEM
ssl.truststore.location={ca}
ssl.client.auth=none
"""
    )
    broker = LocalKafka(
        state_dir=tmp_path_factory.mktemp("secure-kafka"),
        port=port,
        extra_properties=props,
        scram_users=(f"SCRAM-SHA-512=[name={USER},password={PASSWORD}]",),
    )
    broker.start()
    yield broker, ca
    broker.stop()


def secure_settings(home: Path, broker: LocalKafka, ca: Path, password: str = PASSWORD) -> Settings:
    return Settings.build(
        home=home,
        kafka_bootstrap=broker.bootstrap,
        topic_prefix=f"sec{uuid.uuid4().hex[:8]}",
        http_port=free_port(),
        flush_interval_seconds=0.1,
        sink_batch_seconds=0.3,
        telemetry_interval_seconds=0,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username=USER,
        kafka_sasl_password=password,
        kafka_ssl_cafile=str(ca),
    )


def test_sdk_and_sink_work_over_sasl_scram_and_tls(secure_broker, tmp_path):
    broker, ca = secure_broker
    s = secure_settings(tmp_path / "home", broker, ca)
    stack = LocalStack(s)
    stack.start(SINK)
    stack.start(PROCESSOR)
    try:
        exp = fleetlog.Experiment("secure", settings=s)
        with exp.start_logging() as run:
            for i in range(1000):
                run.log("x", float(i))
        assert run.flush(30)
        exp.close()

        def points() -> None:
            df = query.sql("SELECT count() AS n, sum(value) AS s FROM metric_points", settings=s)
            assert (int(df["n"].iloc[0]), float(df["s"].iloc[0])) == (1000, float(sum(range(1000)))), df

        def summary() -> float:  # the faust processors authenticate too: their summary reaches the store
            df = query.sql("SELECT count, sum FROM metric_summaries FINAL WHERE metric = 'x'", settings=s)
            assert not df.empty and int(df["count"].iloc[0]) == 1000, df
            return float(df["sum"].iloc[0])

        eventually(points, 60)
        assert eventually(summary, 120) == float(sum(range(1000)))
        for component in (SINK, PROCESSOR):
            assert PASSWORD not in stack.log_file(component).read_text()
    finally:
        stack.stop(PROCESSOR)
        stack.stop(SINK)


def test_wrong_password_or_plaintext_gets_nothing_and_training_goes_on(secure_broker, tmp_path):
    broker, ca = secure_broker
    bad = secure_settings(tmp_path / "bad", broker, ca, password="wrong")
    exp = fleetlog.Experiment("intruder", settings=bad)
    run = exp.start_logging()
    started = time.perf_counter()
    for i in range(100):
        run.log("x", float(i))
    assert time.perf_counter() - started < 1.0  # logging never waits on the broker
    assert not run.flush(5)  # refused by the broker: kept in the spool, never acknowledged
    exp.close(timeout_seconds=5)
    plain = Settings.build(home=tmp_path / "plain", kafka_bootstrap=broker.bootstrap, telemetry_interval_seconds=0)
    exp2 = fleetlog.Experiment("plaintext", settings=plain)
    run2 = exp2.start_logging()
    run2.log("x", 1.0)
    assert not run2.flush(5)
    exp2.close(timeout_seconds=5)
