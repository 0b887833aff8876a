"""`gitsync migrate-store`: an SQLite installation moved to PostgreSQL keeps everything."""
import pytest

from conftest import POSTGRES, Server, make_tenant, new_postgres_database, psql

pytestmark = pytest.mark.skipif(not POSTGRES, reason="needs a PostgreSQL target: set GITSYNC_TEST_DATABASE_URL")


def test_sqlite_installation_moves_to_postgres_with_its_history(tmp_path):
    source = Server(database_url="sqlite").start()
    target_url, target_name = new_postgres_database()
    try:
        tenant = make_tenant(source)
        cc = tenant.client("codeconnections")
        conn = cc.create_connection(ConnectionName="gh", ProviderType="GitHub", Tags=[{"Key": "k", "Value": "v"}])["ConnectionArn"]
        link = cc.create_repository_link(ConnectionArn=conn, OwnerId="octo", RepositoryName="infra")["RepositoryLinkInfo"]
        cc.create_sync_configuration(Branch="main", ConfigFile="deploy/stack.yaml", RepositoryLinkId=link["RepositoryLinkId"],
                                     ResourceName="seeded-stack", RoleArn=tenant.role_arn("r"), SyncType="CFN_STACK_SYNC")
        tenant.client("proton").create_repository(connectionArn=conn, name="octo/templates", provider="GITHUB")
        seeded = tenant.seed_history(link["RepositoryLinkId"])
        before = cc.get_resource_sync_status(ResourceName="seeded-stack", SyncType="CFN_STACK_SYNC")
        source.stop()

        out = source.cli("migrate-store", "--from", source.database_url, "--to", target_url).stdout
        assert "resource_sync_events" in out and "copied" in out
        again = source.cli("migrate-store", "--from", source.database_url, "--to", target_url, check=False)
        assert again.returncode != 0 and "not empty" in again.stderr

        moved = Server(database_url=target_url)
        moved.data_dir = source.data_dir  # same master key and credentials file
        moved.start()
        try:
            tenant.server = moved
            cc = tenant.client("codeconnections")
            # The same key still signs: its sealed secret moved with the same master key.
            assert cc.get_connection(ConnectionArn=conn)["Connection"]["ConnectionName"] == "gh"
            assert cc.list_tags_for_resource(ResourceArn=conn)["Tags"] == [{"Key": "k", "Value": "v"}]
            after = cc.get_resource_sync_status(ResourceName="seeded-stack", SyncType="CFN_STACK_SYNC")
            for key in ("DesiredState", "LatestSync", "LatestSuccessfulSync"):
                assert after[key] == before[key]
            blockers = cc.get_sync_blocker_summary(ResourceName="seeded-stack", SyncType="CFN_STACK_SYNC")["SyncBlockerSummary"]["LatestBlockers"]
            assert [b["Id"] for b in blockers] == [seeded["stack_blocker"]]
            assert tenant.client("proton").get_repository(name="octo/templates", provider="GITHUB")["repository"]["connectionArn"] == conn
            # New attempts get ids after the copied ones.
            seeded_again = tenant.seed_history(link["RepositoryLinkId"])
            assert seeded_again["stack_blocker"] != seeded["stack_blocker"]
        finally:
            moved.stop()
    finally:
        source.cleanup()
        psql(POSTGRES, f"DROP DATABASE IF EXISTS {target_name} WITH (FORCE)")
