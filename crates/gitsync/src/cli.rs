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
    /// How log lines are written to stderr: `text` (one readable line each) or `json` (one JSON
    /// object each, for log collectors). `GITSYNC_LOG` sets what is logged (default `info`).
    #[arg(long, global = true, env = "GITSYNC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: the AWS APIs on one HTTP listener.
    Serve(ServeArgs),
    /// Prepare an installation before its first start: create the master key (--master-key-file,
    /// or DIR/master.key) and the database's schema. Run once, before replicas start.
    Init {
        #[command(flatten)]
        state: StateArgs,
    },
    /// Manage API access keys (one account per key; several accounts make several tenants).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// What each tenant may do: the AWS accounts its sync roles may be in, and whether it may
    /// deploy with the server's own credentials.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Manage connections: give them the credentials that make them usable.
    #[command(subcommand)]
    Connections(ConnectionsCommand),
    /// Manage webhook secrets, so pushes trigger syncs at once.
    #[command(subcommand)]
    Webhooks(WebhooksCommand),
    /// Where each tenant's status-change events go: HTTP endpoints that receive every change of
    /// a sync's status (started, succeeded, failed), signed with their secret.
    #[command(subcommand)]
    Notifications(NotificationsCommand),
    /// Pull request previews (PullRequestComment): which pull requests a stack previews.
    #[command(subcommand)]
    Previews(PreviewsCommand),
    /// Work with AWS Proton templates without a server: render a template version as gitsync
    /// will deploy it, to check templates before pushing them.
    #[command(subcommand)]
    Proton(ProtonCommand),
    /// Copy an installation's whole database (configuration, keys, history) into another, for
    /// example from the embedded SQLite file to PostgreSQL. Stop the server first; the target must
    /// be empty, and the server on it must use the same master key.
    MigrateStore {
        /// The database to copy from, e.g. sqlite:///var/lib/gitsync/gitsync.db
        #[arg(long, value_name = "URL")]
        from: String,
        /// The database to copy into, e.g. postgres://gitsync@db/gitsync
        #[arg(long, value_name = "URL")]
        to: String,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Show what a Proton template version was registered from: its files and source commit.
    TemplateFiles {
        /// ENVIRONMENT or SERVICE.
        #[arg(long, value_name = "TYPE")]
        template_type: String,
        /// The template's name.
        #[arg(long, value_name = "NAME")]
        name: String,
        /// The version, as MAJOR.MINOR.
        #[arg(long, value_name = "MAJOR.MINOR")]
        version: String,
        /// Print this file's contents instead of the list.
        #[arg(long, value_name = "PATH")]
        path: Option<String>,
        #[arg(
            long,
            env = "GITSYNC_ACCOUNT_ID",
            default_value = "000000000000",
            value_name = "ID"
        )]
        account_id: String,
        #[arg(
            long,
            env = "AWS_DEFAULT_REGION",
            default_value = "us-east-1",
            value_name = "REGION"
        )]
        region: String,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Sync now: check a branch at once (--repository-link-id or, for Proton, --repository, with
    /// --branch), or retry a target's latest commit: a stack (--resource-name), a template
    /// version (--template, --template-type, --major) or a service instance (--service,
    /// --instance). Refused while the target has an ACTIVE blocker.
    Sync(SyncArgs),
    /// Show a sync's status: blockers first, then the desired state and the latest and latest
    /// successful attempts with their events, for a stack (--resource-name), a service instance
    /// (--service, --instance) or a template major version (--template, --template-type,
    /// --major). What to read when something goes wrong.
    Status(StatusArgs),
    /// List every resource sync attempt kept, newest first: all the tenant's targets, or one
    /// (--target), by sync type, status and time, a page at a time. `serve --history-retention`
    /// sets how long attempts are kept (each target's latest and latest successful ones always are).
    History(HistoryArgs),
}

/// Durations such as `500ms`, `2s`, `1m`, `1h`.
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration such as 500ms, 2s, 1m, 1h or 7d"))?;
    let ms = match unit {
        "ms" => n,
        "s" | "" => n * 1000,
        "m" => n * 60_000,
        "h" => n * 3_600_000,
        "d" => n * 86_400_000,
        _ => {
            return Err(format!(
                "'{text}': unknown unit '{unit}' (use ms, s, m, h or d)"
            ));
        }
    };
    if ms == 0 {
        return Err(format!("'{text}' must be longer than zero"));
    }
    Ok(std::time::Duration::from_millis(ms))
}

#[derive(Debug, Subcommand)]
pub enum ConnectionsCommand {
    /// Make a PENDING connection AVAILABLE, storing its credentials encrypted. Give a token
    /// file for https remotes, an SSH private key for ssh remotes, or neither for file:// remotes.
    /// Commit statuses and pull request comments call the Git host's REST API with the token,
    /// or with --api-token-file's (docs/git-hosts.md). Activating again replaces everything
    /// stored before.
    Activate {
        /// The connection's ARN (as CreateConnection answered it).
        connection_arn: String,
        /// File holding an access token for https (sent as the password of HTTP basic auth)
        /// and, unless --api-token-file is given, for the host's REST API.
        #[arg(long, value_name = "FILE", conflicts_with = "ssh_key_file")]
        token_file: Option<PathBuf>,
        /// File holding an SSH private key (OpenSSH format) for ssh:// remotes.
        #[arg(long, value_name = "FILE")]
        ssh_key_file: Option<PathBuf>,
        /// File holding a token for the Git host's REST API alone (commit statuses, pull
        /// request comments): for ssh or file:// connections, or when the Git token may not
        /// call the API. Bitbucket: `user:app-password` is sent as basic auth, anything else as
        /// a bearer token.
        #[arg(long, value_name = "FILE")]
        api_token_file: Option<PathBuf>,
        /// The REST API's base URL, when the host's ProviderEndpoint does not lead to it (an
        /// ssh:// or file:// endpoint), e.g. https://gitlab.example.com/api/v4.
        #[arg(long, value_name = "URL")]
        api_url: Option<String>,
        #[command(flatten)]
        state: StateArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum PreviewsCommand {
    /// Preview pull requests from forks for a stack (off unless allowed): a preview creates a
    /// change set with the stack's role, and the template's macros and transforms run code,
    /// so allow it only when whoever can open a pull request may do that (docs/git-hosts.md).
    Forks {
        /// The stack's resource name (its sync configuration).
        #[arg(long, value_name = "NAME")]
        resource_name: String,
        /// Preview pull requests from forks.
        #[arg(long, conflicts_with = "deny", required_unless_present = "deny")]
        allow: bool,
        /// Stop previewing pull requests from forks (the default).
        #[arg(long)]
        deny: bool,
        #[command(flatten)]
        tenant: TenantArgs,
        #[command(flatten)]
        state: StateArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Set the secret that verifies webhook deliveries for a repository (GitHub and Bitbucket
    /// sign with it, GitLab sends it as its token). Deliveries go to /webhooks/github,
    /// /webhooks/gitlab, /webhooks/bitbucket or /webhooks/generic.
    SetSecret {
        /// The ARN of a repository link (from CreateRepositoryLink) or of a Proton repository
        /// (from Proton's CreateRepository): the secret verifies every delivery for that
        /// repository, and a verified push checks the branches its stack, template and service
        /// syncs watch.
        repository_arn: String,
        /// File holding the secret.
        #[arg(long, value_name = "FILE")]
        secret_file: PathBuf,
        #[command(flatten)]
        state: StateArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProtonCommand {
    /// Render a template version's infrastructure files with a spec and print the
    /// CloudFormation: an environment (the bundle has infrastructure/), a service instance
    /// (instance_infrastructure/; --instance picks one of the spec's instances), or a service's
    /// pipeline (--pipeline). Inputs are checked against the schema and its defaults filled in,
    /// as a deployment does; an undefined value fails naming the file and line.
    Render {
        /// The template version's directory (the one holding schema/schema.yaml), e.g.
        /// templates/vpc/v1.
        bundle_dir: PathBuf,
        /// An environment spec (proton: EnvironmentSpec) or a service spec (proton: ServiceSpec).
        #[arg(long, value_name = "FILE")]
        spec: PathBuf,
        /// The service instance to render (needed when the spec lists several).
        #[arg(long, value_name = "NAME", conflicts_with = "pipeline")]
        instance: Option<String>,
        /// Render the service's pipeline (pipeline_infrastructure/) for every instance of the spec.
        #[arg(long)]
        pipeline: bool,
        /// The environment's outputs, a JSON map ({"VpcId": "vpc-123"}): environment.outputs.*.
        #[arg(long, value_name = "FILE")]
        environment_outputs: Option<PathBuf>,
        /// For a pipeline, the instances' outputs, a JSON map by instance name
        /// ({"dev": {"ServiceName": "web-dev"}}).
        #[arg(long, value_name = "FILE")]
        instance_outputs: Option<PathBuf>,
        /// The environment's account (service_instance.environment.account_id).
        #[arg(long, value_name = "ID", default_value = "000000000000")]
        account_id: String,
        /// The environment's or service's name (default: the template's directory name).
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        /// A pipeline's service.branch_name.
        #[arg(long, value_name = "BRANCH", default_value = "main")]
        branch: String,
        /// A pipeline's service.repository_id (owner/repository).
        #[arg(long, value_name = "ID", default_value = "")]
        repository_id: String,
        /// A pipeline's service.repository_connection_arn.
        #[arg(long, value_name = "ARN", default_value = "")]
        repository_connection_arn: String,
    },
    /// Bind an environment, a service instance or a service's pipeline to an existing stack, such as the one AWS
    /// Proton created for it (read its name from Proton's provisioned resources, or from the
    /// stack's `aws:proton:*` tags). The resource's next deployment updates that stack in place
    /// and tags it as gitsync's (gitsync never takes over an untagged stack otherwise, nor ever
    /// one tagged for another account). Example:
    /// gitsync proton bind-stack --environment prod --stack-name AWSProton-prod-cloudformation-ABCDEF
    BindStack {
        /// The environment to bind.
        #[arg(long, value_name = "NAME", required_unless_present_any = ["service", "pipeline"], conflicts_with_all = ["service", "pipeline"])]
        environment: Option<String>,
        /// The service of the instance to bind (with --instance).
        #[arg(
            long,
            value_name = "NAME",
            requires = "instance",
            conflicts_with = "pipeline"
        )]
        service: Option<String>,
        /// The service instance to bind (with --service).
        #[arg(long, value_name = "NAME", requires = "service")]
        instance: Option<String>,
        /// The service whose pipeline to bind.
        #[arg(long, value_name = "SERVICE")]
        pipeline: Option<String>,
        /// The existing stack's name.
        #[arg(long, value_name = "NAME")]
        stack_name: String,
        #[command(flatten)]
        tenant: TenantArgs,
        #[command(flatten)]
        state: StateArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum NotificationsCommand {
    /// Send the tenant's status-change events to an HTTP endpoint (--url, --secret-file): each
    /// is POSTed as JSON (the shape of an Amazon EventBridge event) with the header
    /// X-Gitsync-Signature-256: sha256=<hex HMAC-SHA256 of the body under the secret). Or put
    /// them on an Amazon EventBridge bus (--eventbridge-bus, with --role-arn unless the tenant
    /// deploys with the server's identity). Delivered at least once; failures are retried with
    /// backoff for a day and shown by `notifications list`.
    #[command(group(clap::ArgGroup::new("where").required(true).args(["url", "eventbridge_bus"])))]
    Add {
        /// The endpoint, https://… (or http://…).
        #[arg(long, value_name = "URL", requires = "secret_file")]
        url: Option<String>,
        /// File holding the secret deliveries are signed with.
        #[arg(long, value_name = "FILE", requires = "url")]
        secret_file: Option<PathBuf>,
        /// The EventBridge bus, by name (in the tenant's account and region) or ARN.
        #[arg(long, value_name = "NAME_OR_ARN", conflicts_with = "url")]
        eventbridge_bus: Option<String>,
        /// The role in the tenant's account that puts the events (assumed with the tenant's
        /// account id as ExternalId); required unless the tenant is trusted (`gitsync accounts`).
        #[arg(long, value_name = "ARN", requires = "eventbridge_bus")]
        role_arn: Option<String>,
        #[command(flatten)]
        tenant: TenantArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// List the tenant's notification targets, with deliveries pending or given up and the
    /// last error.
    List {
        #[command(flatten)]
        tenant: TenantArgs,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Stop sending to a notification target; what it had not received yet is given up.
    Remove {
        /// The target's id (nt-…), from `notifications list`.
        id: String,
        #[command(flatten)]
        tenant: TenantArgs,
        #[command(flatten)]
        state: StateArgs,
    },
}

/// A Proton template's major version: `--template NAME --template-type TYPE --major N`.
#[derive(Debug, Args)]
pub struct TemplateMajorArgs {
    /// A Proton template with a template sync configuration (with --template-type and --major).
    #[arg(long, value_name = "NAME", requires_all = ["template_type", "major"])]
    pub template: Option<String>,
    /// ENVIRONMENT or SERVICE.
    #[arg(long, value_name = "TYPE", requires = "template")]
    pub template_type: Option<String>,
    /// The major version (its `v<major>/` directory).
    #[arg(long, value_name = "MAJOR", requires = "template")]
    pub major: Option<u32>,
}

impl TemplateMajorArgs {
    /// The template's name, type and major, when `--template` is given.
    pub fn parsed(&self) -> anyhow::Result<Option<(&str, gitsync_model::TemplateType, u32)>> {
        let (Some(name), Some(kind), Some(major)) =
            (&self.template, &self.template_type, self.major)
        else {
            return Ok(None);
        };
        let template_type = gitsync_model::TemplateType::parse(kind).ok_or_else(|| {
            anyhow::anyhow!("--template-type {kind}: give ENVIRONMENT or SERVICE")
        })?;
        Ok(Some((name, template_type, major)))
    }
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["resource_name", "service", "template"])))]
pub struct StatusArgs {
    /// The stack (the sync configuration's ResourceName).
    #[arg(long, value_name = "NAME")]
    pub resource_name: Option<String>,
    /// The Proton service whose instance to show (with --instance).
    #[arg(long, value_name = "NAME", requires = "instance")]
    pub service: Option<String>,
    /// The service instance to show.
    #[arg(long, value_name = "NAME", requires = "service")]
    pub instance: Option<String>,
    #[command(flatten)]
    pub template: TemplateMajorArgs,
    #[command(flatten)]
    pub tenant: TenantArgs,
    #[command(flatten)]
    pub state: StateArgs,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Only this target, named as its attempts name it: the stack, `template:MAJOR`, or the
    /// service instance.
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
    /// Only this sync type: CFN_STACK_SYNC, TEMPLATE_SYNC or SERVICE_SYNC.
    #[arg(long, value_name = "TYPE")]
    pub sync_type: Option<String>,
    /// Only attempts that ended so: SUCCEEDED, FAILED, IN_PROGRESS or INITIATED.
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// Only attempts started at or after this time: RFC 3339 (2026-12-01T00:00:00Z) or an age
    /// (30m, 12h, 7d).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Only attempts started before this time (as --since).
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Attempts per page.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub limit: usize,
    /// Continue below this point (printed at the end of the previous page).
    #[arg(long, value_name = "TOKEN")]
    pub next_token: Option<i64>,
    /// Print each attempt's events too.
    #[arg(long)]
    pub events: bool,
    #[command(flatten)]
    pub tenant: TenantArgs,
    #[command(flatten)]
    pub state: StateArgs,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true)
    .args(["resource_name", "repository_link_id", "repository", "template", "service"])))]
pub struct SyncArgs {
    /// Retry this stack's latest commit now (the sync configuration's ResourceName).
    #[arg(long, value_name = "NAME")]
    pub resource_name: Option<String>,
    /// Check this repository link's branch at once (with --branch).
    #[arg(long, value_name = "ID", requires = "branch")]
    pub repository_link_id: Option<String>,
    /// Check this Proton repository's branch at once (with --branch), e.g. GITHUB:my-org/templates.
    #[arg(long, value_name = "PROVIDER:NAME", requires = "branch")]
    pub repository: Option<String>,
    /// The branch to check.
    #[arg(long, value_name = "BRANCH")]
    pub branch: Option<String>,
    #[command(flatten)]
    pub template: TemplateMajorArgs,
    /// Retry the latest commit of this Proton service's instance (with --instance).
    #[arg(long, value_name = "NAME", requires = "instance")]
    pub service: Option<String>,
    /// The service instance.
    #[arg(long, value_name = "NAME", requires = "service")]
    pub instance: Option<String>,
    #[command(flatten)]
    pub tenant: TenantArgs,
    #[command(flatten)]
    pub state: StateArgs,
}

/// Which tenant a command acts for.
#[derive(Debug, Args)]
pub struct TenantArgs {
    /// The account that owns it.
    #[arg(
        long,
        env = "GITSYNC_ACCOUNT_ID",
        default_value = "000000000000",
        value_name = "ID"
    )]
    pub account_id: String,
    /// The region it lives in.
    #[arg(
        long,
        env = "AWS_DEFAULT_REGION",
        default_value = "us-east-1",
        value_name = "REGION"
    )]
    pub region: String,
}

impl TenantArgs {
    pub fn tenant(&self) -> gitsync_model::Tenant {
        gitsync_model::Tenant::new(self.account_id.clone(), self.region.clone())
    }
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
    /// DIR/master.key, which `serve` creates on its first start; `gitsync init` creates a named
    /// one. Replicas sharing a database must share this key.
    #[arg(long, env = "GITSYNC_MASTER_KEY_FILE", value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Change a quota, as NAME=NUMBER (repeatable, or comma-separated in the variable). Names:
    /// connections, hosts, repository_links, cfn_sync_configurations, sync_configurations_per_link,
    /// sync_configurations_per_branch, tags_per_resource, proton_repositories,
    /// template_sync_configs, service_sync_configs, proton_templates, events_per_attempt.
    /// Defaults are AWS's quotas.
    #[arg(
        long = "limit",
        env = "GITSYNC_LIMITS",
        value_name = "NAME=NUMBER",
        value_delimiter = ','
    )]
    pub limits: Vec<String>,

    /// Address for the HTTP listener.
    #[arg(
        long,
        env = "GITSYNC_LISTEN",
        default_value = "127.0.0.1:7450",
        value_name = "ADDR"
    )]
    pub listen: SocketAddr,

    /// How often each watched branch is checked for new commits (webhooks trigger checks at once).
    #[arg(long, env = "GITSYNC_POLL_INTERVAL", default_value = "60s", value_name = "DURATION", value_parser = parse_duration)]
    pub poll_interval: std::time::Duration,

    /// How long a replica holds work without renewing; a stopped replica's work is taken over after it.
    #[arg(long, env = "GITSYNC_LEASE_TTL", default_value = "60s", value_name = "DURATION", value_parser = parse_duration)]
    pub lease_ttl: std::time::Duration,

    /// On SIGTERM, how long syncs in flight may take to finish; the rest are stopped and released
    /// at once to another replica (their attempts end ABANDONED).
    #[arg(long, env = "GITSYNC_SHUTDOWN_GRACE", default_value = "30s", value_name = "DURATION", value_parser = parse_duration)]
    pub shutdown_grace: std::time::Duration,

    /// The `source` of the status-change events gitsync sends (`gitsync notifications`).
    /// EventBridge reserves `aws.*`: rules written for AWS's Git sync events need only their
    /// `source` changed to this.
    #[arg(long, env = "GITSYNC_EVENT_SOURCE", default_value = gitsync_model::notification::DEFAULT_SOURCE, value_name = "SOURCE")]
    pub event_source: String,

    /// Call a provider's REST API (commit statuses) at this base instead of its own, as
    /// TYPE=URL (repeat it, or separate pairs with commas): GitHub=https://github-proxy.internal.
    /// The defaults: GitHub https://api.github.com, GitHubEnterpriseServer and GitLabSelfManaged
    /// the host's ProviderEndpoint with /api/v3 and /api/v4, GitLab https://gitlab.com/api/v4,
    /// Bitbucket https://api.bitbucket.org/2.0 (docs/git-hosts.md).
    #[arg(
        long,
        env = "GITSYNC_API_BASE",
        value_name = "TYPE=URL",
        value_delimiter = ','
    )]
    pub api_base: Vec<String>,

    /// Clone a public provider's repositories (GitHub, GitLab, Bitbucket, AzureDevOps) from this
    /// base instead of its own host, as TYPE=URL (repeat it, or separate pairs with commas):
    /// mirrors, proxies. Repositories are `<URL>/<owner>/<name>.git`.
    #[arg(
        long,
        env = "GITSYNC_GIT_BASE",
        value_name = "TYPE=URL",
        value_delimiter = ','
    )]
    pub git_base: Vec<String>,

    /// How long resource and repository sync attempts are kept (pruned hourly). Each target's
    /// latest and latest successful attempts, each branch's latest repository sync, and running
    /// attempts are always kept.
    #[arg(long, env = "GITSYNC_HISTORY_RETENTION", default_value = "90d", value_name = "DURATION", value_parser = parse_duration)]
    pub history_retention: std::time::Duration,

    /// How long a sync status read from the database may be answered from memory. This server's
    /// own changes show at once; those of another replica (or of the `gitsync` CLI) within this
    /// time. 0 reads the database every time.
    #[arg(long, env = "GITSYNC_STATUS_CACHE_TTL", default_value = "1s", value_name = "DURATION", value_parser = parse_duration)]
    pub status_cache_ttl: std::time::Duration,

    /// Time limit of every git network call (listing refs, fetching).
    #[arg(long, env = "GITSYNC_GIT_TIMEOUT", default_value = "60s", value_name = "DURATION", value_parser = parse_duration)]
    pub git_timeout: std::time::Duration,

    /// This replica's name in leases and events (default: host name and process id).
    #[arg(long, env = "GITSYNC_REPLICA_ID", value_name = "NAME")]
    pub replica_id: Option<String>,

    /// Put status-change events through this EventBridge endpoint (an EventBridge-compatible
    /// server, which serves STS too) instead of AWS's.
    #[arg(long, env = "GITSYNC_EVENTBRIDGE_ENDPOINT", value_name = "URL")]
    pub eventbridge_endpoint: Option<String>,

    /// Testing aid: pause every resource sync this long, to stop a server in the middle of one.
    #[arg(long, env = "GITSYNC_TEST_ATTEMPT_DELAY", value_parser = parse_duration, hide = true)]
    pub test_attempt_delay: Option<std::time::Duration>,
    /// Deploy stacks through this CloudFormation endpoint (a CloudFormation-compatible server).
    /// Without it, stacks are deployed to AWS when AWS credentials are configured (AWS_ACCESS_KEY_ID,
    /// AWS_PROFILE, web identity or container credentials), and only validated otherwise.
    #[arg(long, env = "GITSYNC_CLOUDFORMATION_ENDPOINT", value_name = "URL")]
    pub cloudformation_endpoint: Option<String>,
    /// Assume each sync configuration's RoleArn through STS for trusted tenants too. Untrusted
    /// tenants' roles are always assumed (see `gitsync accounts`), with ExternalId set to the
    /// tenant's account id.
    #[arg(long, env = "GITSYNC_ASSUME_SYNC_ROLE")]
    pub assume_sync_role: bool,

    /// Let hosts name file:// endpoints, which read repositories from this machine's disk. For
    /// single-user installs and tests only: any tenant could then read any repository the server
    /// can.
    #[arg(long, env = "GITSYNC_ALLOW_FILE_REMOTES")]
    pub allow_file_remotes: bool,

    /// Largest file read from a repository (deployment files, templates, ops files, specs,
    /// bundle files), checked before the file is inflated; a larger one fails the sync.
    #[arg(long, env = "GITSYNC_MAX_FILE_BYTES", default_value_t = 4 << 20, value_name = "BYTES")]
    pub max_file_bytes: u64,
    /// Most files and directories one walk of a repository's tree may visit (template bundles,
    /// finding a template's directory).
    #[arg(
        long,
        env = "GITSYNC_MAX_TREE_ENTRIES",
        default_value_t = 10_000,
        value_name = "N"
    )]
    pub max_tree_entries: usize,
    /// Deepest directory nesting such a walk may enter.
    #[arg(
        long,
        env = "GITSYNC_MAX_TREE_DEPTH",
        default_value_t = 16,
        value_name = "N"
    )]
    pub max_tree_depth: usize,
    /// How long webhook delivery records are kept.
    #[arg(long, env = "GITSYNC_WEBHOOK_RETENTION", default_value = "7d", value_name = "DURATION", value_parser = parse_duration)]
    pub webhook_retention: std::time::Duration,
    /// Only validate stacks, never deploy them, whatever credentials are configured.
    #[arg(
        long,
        env = "GITSYNC_VALIDATE_ONLY",
        conflicts_with = "cloudformation_endpoint"
    )]
    pub validate_only: bool,

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
pub enum AccountsCommand {
    /// Set what a tenant may do. Without --deploy-account its roles may be in its own account
    /// only; without --trusted it never deploys with the server's own credentials.
    Set {
        /// The tenant's 12-digit account id.
        account_id: String,
        /// An AWS account the tenant's sync roles may be in (repeat for several). Replaces the
        /// list; the tenant's own account is always on it.
        #[arg(long = "deploy-account", value_name = "ID")]
        deploy_accounts: Vec<String>,
        /// Deploy with the server's own credentials unless the server assumes sync roles for
        /// everyone (--assume-sync-role). For a one-team install.
        #[arg(long, conflicts_with = "untrusted")]
        trusted: bool,
        /// Always deploy as the tenant's sync role (the default).
        #[arg(long)]
        untrusted: bool,
        #[command(flatten)]
        state: StateArgs,
    },
    /// List every tenant (with keys or a policy) and what it may do.
    List {
        #[command(flatten)]
        state: StateArgs,
    },
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
