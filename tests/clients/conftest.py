"""Fixtures that run the real gitsync binary and hand tests real AWS clients.

One server runs per test session, on a free port with a fresh data directory. Each test that
needs isolation gets its own tenant: a new access key for a fresh account, made with
`gitsync keys create` while the server runs (which is itself part of what is tested).
"""
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import sys
import time
import urllib.request
from dataclasses import dataclass

import boto3
import pytest
from botocore.config import Config

REGION = "us-east-1"
NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"})


def _binary(env_name, relative):
    path = os.environ.get(env_name)
    if path:
        return path
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "target"))
    return os.path.abspath(os.path.join(target, "debug", relative))


GITSYNC = _binary("GITSYNC_BIN", "gitsync")
SEED = _binary("GITSYNC_SEED_BIN", os.path.join("examples", "seed_sync_history"))
REGISTER = os.path.join(os.path.dirname(SEED), "register_template_version")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# When set (for example postgres://postgres@127.0.0.1:5432/test), every server runs on a fresh
# PostgreSQL database made from this one's server instead of on SQLite.
POSTGRES = os.environ.get("GITSYNC_TEST_DATABASE_URL")


def psql(url, sql):
    subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql], check=True, capture_output=True, timeout=60)


def new_postgres_database():
    name = "gitsync_it_" + "".join(random.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
    psql(POSTGRES, f"CREATE DATABASE {name}")
    return POSTGRES.rsplit("/", 1)[0] + "/" + name, name


class Server:
    """A running `gitsync serve`, on SQLite in its data directory or on its own PostgreSQL database."""

    def __init__(self, extra_args=(), database_url=None, env=None):
        self.data_dir = tempfile.mkdtemp(prefix="gitsync-test-")
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = os.path.join(self.data_dir, "server.log")
        self.extra_args = list(extra_args)
        # A replica's master key is another server's: every command run for it names that key.
        self.master_key_file = None
        if "--master-key-file" in self.extra_args:
            i = self.extra_args.index("--master-key-file")
            self.master_key_file = self.extra_args[i + 1]
            del self.extra_args[i:i + 2]
        # No AWS credentials reach the server unless a test gives them: with none, stacks are
        # only validated (with some, gitsync would deploy them to AWS).
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self.env.update(env or {})
        self.process = None
        self.owned_database = None
        if database_url == "sqlite":
            self.database_url = f"sqlite://{self.data_dir}/gitsync.db"
        elif database_url:
            self.database_url = database_url
        elif POSTGRES:
            self.database_url, self.owned_database = new_postgres_database()
        else:
            self.database_url = f"sqlite://{self.data_dir}/gitsync.db"

    def state_args(self):
        """What every command needs to find this server's state: its data directory, its
        database and (when it is not the one in the data directory) its master key."""
        args = ["--data-dir", self.data_dir]
        if self.database_url != f"sqlite://{self.data_dir}/gitsync.db":
            # Another server's database (a replica), or PostgreSQL.
            args += ["--database-url", self.database_url]
        if self.master_key_file:
            args += ["--master-key-file", self.master_key_file]
        return args

    def start(self):
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [GITSYNC, "serve", "--listen", f"127.0.0.1:{self.port}", *self.state_args(), *self.extra_args],
            stdout=log,
            stderr=log,
            env=self.env,
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gitsync exited with {self.process.returncode}: {open(self.log_path).read()}")
            try:
                with urllib.request.urlopen(self.endpoint + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("gitsync did not become healthy in 30 s")

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill_and_restart(self):
        """SIGKILLs the server (no chance to clean up) and starts it again on a new port, on the
        same data directory and database."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.start()

    def cli(self, *args, check=True):
        """Runs a `gitsync` subcommand against this server's data directory."""
        result = subprocess.run([GITSYNC, *args, *self.state_args()], capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"gitsync {' '.join(args)} failed: {result.stderr}")
        return result

    def default_credentials(self):
        text = open(os.path.join(self.data_dir, "credentials")).read()
        return parse_credentials(text)

    def cleanup(self):
        self.stop()
        # GITSYNC_TEST_LOGS=DIR keeps every server's log there, to read after a failure.
        keep = os.environ.get("GITSYNC_TEST_LOGS")
        if keep and os.path.exists(self.log_path):
            os.makedirs(keep, exist_ok=True)
            shutil.copy(self.log_path, os.path.join(keep, os.path.basename(self.data_dir) + ".log"))
        shutil.rmtree(self.data_dir, ignore_errors=True)
        if self.owned_database:
            psql(POSTGRES, f"DROP DATABASE IF EXISTS {self.owned_database} WITH (FORCE)")


def parse_credentials(text):
    key = re.search(r"aws_access_key_id = (\S+)", text).group(1)
    secret = re.search(r"aws_secret_access_key = (\S+)", text).group(1)
    return key, secret


@dataclass
class Tenant:
    server: Server
    account_id: str
    access_key_id: str
    secret_access_key: str
    region: str = REGION

    def client(self, service, region=None, **kwargs):
        return boto3.client(
            service,
            endpoint_url=self.server.endpoint,
            region_name=region or self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=NO_RETRIES,
            **kwargs,
        )

    def role_arn(self, name="gitsync"):
        """A sync role in this tenant's own AWS account: the only account an untrusted tenant's
        roles may live in unless the operator allows more (`gitsync accounts set`)."""
        return f"arn:aws:iam::{self.account_id}:role/{name}"

    def env(self):
        """Environment for a subprocess client (AWS CLI, node) acting as this tenant."""
        env = dict(os.environ)
        env.update(
            AWS_ACCESS_KEY_ID=self.access_key_id,
            AWS_SECRET_ACCESS_KEY=self.secret_access_key,
            AWS_DEFAULT_REGION=self.region,
            AWS_REGION=self.region,
            GITSYNC_ENDPOINT=self.server.endpoint,
        )
        for k in ("AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_SESSION_TOKEN"):
            env.pop(k, None)
        return env

    def seed_history(self, link_id=None):
        """Writes a sync history for this tenant through the store (see seed_sync_history.rs)."""
        args = [
            SEED,
            self.server.database_url,
            os.path.join(self.server.data_dir, "master.key"),
            self.account_id,
            self.region,
        ]
        if link_id:
            args.append(link_id)
        out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True).stdout
        return json.loads(out)


def register_version(tenant, template_type, name, major):
    """Registers the next minor of `major` through the store (see register_template_version.rs)."""
    args = [REGISTER, tenant.server.database_url, os.path.join(tenant.server.data_dir, "master.key"),
            tenant.account_id, tenant.region, template_type, name, str(major)]
    return json.loads(subprocess.run(args, capture_output=True, text=True, timeout=60, check=True).stdout)


def make_service(tenant, name, template="svc-template"):
    """A Proton service without instances, on a published version of a service template."""
    proton = tenant.client("proton")
    if template not in [t["name"] for t in proton.list_service_templates()["templates"]]:
        proton.create_service_template(name=template)
    version = register_version(tenant, "SERVICE", template, 1)
    proton.update_service_template_version(templateName=template, majorVersion="1", minorVersion=str(version["minor"]), status="PUBLISHED")
    return proton.create_service(name=name, templateName=template, templateMajorVersion="1", spec="proton: ServiceSpec\n")["service"]


def new_account_id():
    return "".join(random.choice("0123456789") for _ in range(12))


def make_tenant(server, account_id=None, region=REGION):
    account_id = account_id or new_account_id()
    out = server.cli("keys", "create", "--account-id", account_id).stdout
    key, secret = parse_credentials(out)
    return Tenant(server, account_id, key, secret, region)


@pytest.fixture(scope="session")
def server():
    s = Server().start()
    yield s
    s.cleanup()


@pytest.fixture
def tenant(server):
    return make_tenant(server)


@pytest.fixture
def other_tenant(server):
    return make_tenant(server)


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def error_message(excinfo):
    return excinfo.value.response["Error"]["Message"]


@pytest.fixture(scope="module")
def moto(tmp_path_factory):
    """A moto server (CloudFormation, STS, EC2, SQS, … from PyPI's moto[server]) for one test
    module, with the fixes of moto_patched.py; answers its URL."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    proc = subprocess.Popen([sys.executable, os.path.join(os.path.dirname(__file__), "moto_patched.py"),
                             "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    else:
        raise RuntimeError("moto_server did not start")
    yield url
    proc.terminate()
    proc.wait()
