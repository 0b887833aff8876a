//! `gitsync`: the self-hosted Git sync server, and the commands that manage its state.

mod accounts;
mod cli;
mod connections;
mod dashboard;
mod history;
mod keys;
mod metrics;
mod notifications;
mod previews;
mod proton;
mod sandbox;
mod serve;
mod state;
mod status;
mod sync;
mod webhooks;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Template work from repositories runs in a child of this program, before any runtime or
    // thread exists, under limits the child sets on itself.
    if std::env::args_os().nth(1).as_deref()
        == Some(gitsync_deploy::sandbox::CHILD_ARGUMENT.as_ref())
    {
        return sandbox::child();
    }
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run()),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    let cli = cli::Cli::parse();
    state::restrict_umask();
    if !matches!(cli.command, cli::Command::Serve(_)) {
        print_into_closed_pipes_quietly();
    }
    init_logging(cli.log_format);
    let result = match cli.command {
        cli::Command::Serve(args) => serve::run(args).await,
        cli::Command::Init { state } => state.init().await,
        cli::Command::Keys(cmd) => keys::run(cmd).await,
        cli::Command::Accounts(cmd) => accounts::run(cmd).await,
        cli::Command::Connections(cmd) => connections::run(cmd).await,
        cli::Command::Webhooks(cmd) => webhooks::run_command(cmd).await,
        cli::Command::Notifications(cmd) => notifications::run(cmd).await,
        cli::Command::Proton(cmd) => proton::run(cmd).await,
        cli::Command::Previews(cmd) => previews::run(cmd).await,
        cli::Command::Status(args) => status::run(args).await,
        cli::Command::History(args) => history::run(args).await,
        cli::Command::Sync(args) => sync::run(args).await,
        cli::Command::MigrateStore { from, to, state } => migrate_store(&from, &to, &state).await,
        cli::Command::TemplateFiles {
            template_type,
            name,
            version,
            path,
            account_id,
            region,
            state,
        } => {
            template_files(
                &template_type,
                &name,
                &version,
                path.as_deref(),
                &gitsync_model::Tenant::new(account_id, region),
                &state,
            )
            .await
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gitsync: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `gitsync migrate-store`: copies every table from one database into another.
async fn migrate_store(from: &str, to: &str, state: &cli::StateArgs) -> anyhow::Result<()> {
    let source = state.open_url(from, Default::default()).await?;
    let target = state.open_url(to, Default::default()).await?;
    let copied = source.copy_into(&target).await?;
    for (table, rows) in &copied {
        println!("{table:<26} {rows:>8} rows");
    }
    println!(
        "copied {} rows; start gitsync with --database-url {to} and the same master key",
        copied.iter().map(|(_, n)| n).sum::<u64>()
    );
    Ok(())
}

/// `gitsync template-files`: what a template version was registered from.
async fn template_files(
    template_type: &str,
    name: &str,
    version: &str,
    path: Option<&str>,
    tenant: &gitsync_model::Tenant,
    state: &cli::StateArgs,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let template_type = gitsync_model::TemplateType::parse(template_type)
        .context("--template-type must be ENVIRONMENT or SERVICE")?;
    let (major, minor) = version
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse::<i64>().ok()?, b.parse::<i64>().ok()?)))
        .context("--version must be MAJOR.MINOR, for example 1.0")?;
    let state = state.open().await?;
    let v = state
        .store
        .get_template_version(tenant, template_type, name, major, minor)
        .await?;
    let files = state
        .store
        .template_version_files(tenant, template_type, name, major, minor)
        .await?;
    match path {
        Some(p) => {
            let bytes = files
                .get(p)
                .with_context(|| format!("version {version} has no file {p}"))?;
            print!("{}", String::from_utf8_lossy(bytes));
        }
        None => {
            println!(
                "{} template {name} version {version} ({}), registered from commit {}",
                template_type,
                v.status,
                v.source_commit.as_deref().unwrap_or("?")
            );
            for (file, bytes) in &files {
                println!("{:>8}  {file}", bytes.len());
            }
        }
    }
    Ok(())
}

/// `gitsync status | head` ends like any Unix tool when `head` closes the pipe, instead of
/// panicking in `println!`. (Not for `serve`: its sockets must see EPIPE, not a signal.)
fn print_into_closed_pipes_quietly() {
    #[cfg(unix)]
    // SAFETY: sets the process-wide disposition of one signal; nothing else in gitsync sets it.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Logs go to stderr, as text or JSON lines; `GITSYNC_LOG` (or `RUST_LOG`) sets the filter,
/// `info` by default.
fn init_logging(format: cli::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("GITSYNC_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info,sqlx=warn"));
    use std::io::IsTerminal;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        cli::LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        cli::LogFormat::Json => logs.json().with_current_span(true).init(),
    }
}
