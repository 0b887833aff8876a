//! The command line. Every flag has an environment-variable twin (`GITSYNC_…`).

use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "gitsync",
    version,
    about = "Self-hosted Git sync: keeps CloudFormation stacks and Proton resources in step with Git, \
             and answers the AWS Proton and CodeConnections APIs so AWS tools work against it.",
    after_help = "Start with `gitsync serve`, then point AWS tools at it:\n  \
                  AWS_SHARED_CREDENTIALS_FILE=<data dir>/credentials aws codeconnections list-connections \\\n    \
                  --endpoint-url http://127.0.0.1:7450 --region us-east-1"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: the AWS APIs on one HTTP listener.
    Serve(ServeArgs),
    /// Manage API access keys (one account per key; several accounts make several tenants).
    #[command(subcommand)]
    Keys(KeysCommand),
}

/// Where gitsync keeps its state. Every command that reads or changes state takes these, and
/// works while the server runs.
#[derive(Debug, Clone, Args)]
pub struct StateArgs {
    /// Directory for the embedded database, the master key and the generated credentials file.
    /// Defaults to $XDG_DATA_HOME/gitsync, or ~/.local/share/gitsync.
    #[arg(long, env = "GITSYNC_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Database to use instead of the embedded SQLite file: sqlite://PATH or postgres://…
    #[arg(long, env = "GITSYNC_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,

    /// File holding the 32-byte key that encrypts secrets at rest (64 hex characters). Defaults to
    /// DIR/master.key, created on first use. Replicas sharing a database must share this key.
    #[arg(long, env = "GITSYNC_MASTER_KEY_FILE", value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,

    /// Change a quota, as NAME=NUMBER (repeatable, or comma-separated in the variable). Names:
    /// connections, hosts, repository_links, cfn_sync_configurations, sync_configurations_per_link,
    /// sync_configurations_per_branch, tags_per_resource, proton_repositories,
    /// template_sync_configs, service_sync_configs. Defaults are AWS's quotas.
    #[arg(
        long = "limit",
        env = "GITSYNC_LIMITS",
        value_name = "NAME=NUMBER",
        value_delimiter = ','
    )]
    pub limits: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address for the HTTP listener.
    #[arg(
        long,
        env = "GITSYNC_LISTEN",
        default_value = "127.0.0.1:7450",
        value_name = "ADDR"
    )]
    pub listen: SocketAddr,

    /// Account of the access key created on first start of a data directory.
    #[arg(
        long,
        env = "GITSYNC_ACCOUNT_ID",
        default_value = "000000000000",
        value_name = "ID"
    )]
    pub account_id: String,

    #[command(flatten)]
    pub state: StateArgs,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key pair for an account and print it, in AWS shared-credentials format.
    Create {
        /// The 12-digit account the key acts for.
        #[arg(
            long,
            env = "GITSYNC_ACCOUNT_ID",
            default_value = "000000000000",
            value_name = "ID"
        )]
        account_id: String,
        /// Profile name to print above the key (default: account-<ID>).
        #[arg(long, value_name = "NAME")]
        profile: Option<String>,
        #[command(flatten)]
        state: StateArgs,
    },
    /// List access key ids with their accounts (secrets are never shown again).
    List {
        #[command(flatten)]
        state: StateArgs,
    },
    /// Delete an access key; requests signed with it are refused from then on.
    Delete {
        /// The access key id (AKIA…).
        access_key_id: String,
        #[command(flatten)]
        state: StateArgs,
    },
}
