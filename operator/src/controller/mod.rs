//! The controller: watch clouds and their children, apply what render asks for, report status.

/// Flags of `insync-operator run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Watch only this namespace; all namespaces when unset.
    #[arg(long, env = "WATCH_NAMESPACE")]
    pub namespace: Option<String>,
}

/// Runs the controller until SIGTERM/SIGINT.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let _ = args;
    Ok(())
}
