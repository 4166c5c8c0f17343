//! `insync-operator`: print the CRD, render clouds, or run the controller.

use std::io::{Read as _, Write as _};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use insync_operator::api::InSyncCloud;
use insync_operator::{cli, preview};

#[derive(Parser)]
#[command(
    name = "insync-operator",
    version,
    about = "Runs inSync Clouds on Kubernetes from InSyncCloud resources"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PlanOutput {
    Text,
    Json,
}

/// The CRDs `crd` prints, by plural name (as their files under `crds/` are named).
#[derive(Clone, Copy, clap::ValueEnum)]
enum CrdKind {
    Insyncclouds,
    Insynccloudbackups,
}

#[derive(Subcommand)]
enum Command {
    /// Print a CustomResourceDefinition as YAML (InSyncCloud unless another kind is named).
    Crd {
        /// Which CRD.
        #[arg(value_enum, default_value_t = CrdKind::Insyncclouds)]
        kind: CrdKind,
    },
    /// Print every object the operator would create for the clouds in a manifest (like `helm
    /// template`). Exits 2 when a cloud is invalid, listing every problem.
    Render {
        /// Manifest file with one or more InSyncCloud documents, or `-` for stdin.
        #[arg(short = 'f', long = "filename")]
        file: String,
    },
    /// Preview what applying a manifest would do to each cloud: the ordered restarts and why,
    /// how many at a time, the gates, what changes in place and what cannot be undone. Compares
    /// with the live cloud (kubeconfig as kubectl), or offline with `--from`. Exits 2 when a
    /// cloud is invalid.
    Plan {
        /// Manifest with the new InSyncCloud(s), or `-` for stdin.
        #[arg(short = 'f', long = "filename")]
        file: String,
        /// Manifest with the current InSyncCloud(s), instead of reading the cluster.
        #[arg(long)]
        from: Option<String>,
        /// Output format.
        #[arg(short = 'o', long, value_enum, default_value_t = PlanOutput::Text)]
        output: PlanOutput,
    },
    /// Run the controller.
    Run(Box<insync_operator::controller::RunArgs>),
    /// Inside a backup Job (rendered by the operator): export the metadata store, upload the
    /// MySQL dump and the export, read them back and write manifest.json last. Exits 1 with
    /// the reason on any failure, leaving no manifest.
    BackupRun(Box<insync_operator::runner::RunnerArgs>),
    /// Inside a restore Job (rendered by the operator): check a backup against its manifest
    /// (`--step=check`), fetch it (`fetch`) or load the metadata store from it (`metadata`).
    /// Exits 1 with the reason on any failure.
    RestoreRun(Box<insync_operator::runner::restore::RestoreArgs>),
    /// Inside a deletion Job (rendered by the operator for an expired backup): delete the
    /// backup's files, manifest first, refusing any prefix that is not `<cloud>/<backup>/`.
    BackupDelete(Box<insync_operator::runner::delete::DeleteArgs>),
}

/// With `--features dhat-heap`, every allocation is recorded; `run` writes `dhat-heap.json`
/// (the allocation sites live at the heap's peak) when it stops. For measuring only.
#[cfg(feature = "dhat-heap")]
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    insync_operator::install_crypto_provider();
    match cli.command {
        Command::Crd { kind } => match match kind {
            CrdKind::Insyncclouds => cli::crd_yaml(),
            CrdKind::Insynccloudbackups => cli::backup_crd_yaml(),
        } {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e, 1),
        },
        Command::Render { file } => render(&file),
        Command::Plan { file, from, output } => plan(&file, from.as_deref(), output),
        Command::BackupRun(args) => backup_run(*args),
        Command::RestoreRun(args) => restore_run(*args),
        Command::BackupDelete(args) => backup_delete(*args),
        Command::Run(args) => {
            #[cfg(feature = "dhat-heap")]
            // Deep stacks: with dhat's default of 10 frames, an allocation made while parsing
            // ends inside serde and says nothing of which stream or cache holds it.
            let _profiler = dhat::Profiler::builder().trim_backtraces(Some(64)).build();
            // One thread: the reconciles already take turns inside the controller's one task
            // (kube runs them as futures of that task), and the rest waits on the API server.
            // A worker pool only added threads, and glibc gives each allocating thread an arena
            // of its own (two workers: three heaps, 14 + 28 + 27 MiB resident, seen in smaps
            // while converging 1000 clouds).
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return fail(&e, 1),
            };
            match runtime.block_on(insync_operator::controller::run(*args)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

fn restore_run(args: insync_operator::runner::restore::RestoreArgs) -> ExitCode {
    run_step(
        "restore",
        insync_operator::runner::restore::run(args),
        |report| serde_json::to_string(&report).unwrap_or_default(),
    )
}

fn backup_delete(args: insync_operator::runner::delete::DeleteArgs) -> ExitCode {
    run_step(
        "deletion",
        insync_operator::runner::delete::run(args),
        |report| serde_json::to_string(&report).unwrap_or_default(),
    )
}

fn backup_run(args: insync_operator::runner::RunnerArgs) -> ExitCode {
    run_step("backup", insync_operator::runner::run(args), |report| {
        report.to_message()
    })
}

/// Runs one step of a backup Job's pod to the end: its report on stdout when it succeeds (the
/// operator reads it back from the pod), its reason where the operator looks for it when not.
fn run_step<T, E: std::error::Error>(
    step: &str,
    work: impl std::future::Future<Output = Result<T, E>>,
    report: impl FnOnce(T) -> String,
) -> ExitCode {
    insync_operator::telemetry::init_tracing(insync_operator::telemetry::LogFormat::Text);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&e, 1),
    };
    match runtime.block_on(work) {
        Ok(done) => {
            println!("{}", report(done));
            ExitCode::SUCCESS
        }
        Err(e) => runner_failed(step, &insync_operator::runner::error_chain(&e)),
    }
}

fn read(file: &str) -> Result<String, cli::CliError> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map(|_| text)
            .map_err(|source| cli::CliError::Read {
                name: "-".into(),
                source,
            })
    } else {
        std::fs::read_to_string(file).map_err(|source| cli::CliError::Read {
            name: file.into(),
            source,
        })
    }
}

fn clouds(file: &str) -> Result<Vec<InSyncCloud>, cli::CliError> {
    read(file).and_then(|text| cli::parse_clouds(file, &text))
}

fn render(file: &str) -> ExitCode {
    let result = clouds(file).and_then(|clouds| cli::render_stream(&clouds));
    match result {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(e @ (cli::CliError::Invalid(_) | cli::CliError::Parse { .. })) => fail(&e, 2),
        Err(e) => fail(&e, 1),
    }
}

fn plan(file: &str, from: Option<&str>, output: PlanOutput) -> ExitCode {
    let new = match clouds(file) {
        Ok(c) => c,
        Err(e @ cli::CliError::Parse { .. }) => return fail(&e, 2),
        Err(e) => return fail(&e, 1),
    };
    let invalid: Vec<_> = new.iter().filter_map(|c| preview::check(c).err()).collect();
    if !invalid.is_empty() {
        return fail(&cli::CliError::Invalid(invalid), 2);
    }
    let old = match from {
        Some(from) => clouds(from).map_err(|e| fail(&e, 1)),
        None => live_clouds(&new).map_err(|e| fail(&e, 1)),
    };
    let old = match old {
        Ok(old) => old,
        Err(code) => return code,
    };
    let key = |c: &InSyncCloud| (c.cloud_namespace().to_owned(), c.cloud_name().to_owned());
    let mut previews = Vec::new();
    for cloud in &new {
        let result = match old.iter().find(|o| key(o) == key(cloud)) {
            Some(old) => preview::preview(old, cloud),
            None => preview::creation(cloud),
        };
        match result {
            Ok(p) => previews.push(p),
            Err(e) => return fail(&e, 1),
        }
    }
    match output {
        PlanOutput::Text => {
            let texts: Vec<String> = previews.iter().map(ToString::to_string).collect();
            // A closed pipe (`| head`) is not an error worth a panic.
            let _ = write!(std::io::stdout(), "{}", texts.join("\n"));
        }
        PlanOutput::Json => match serde_json::to_string_pretty(&previews) {
            Ok(json) => {
                let _ = writeln!(std::io::stdout(), "{json}");
            }
            Err(e) => return fail(&e, 1),
        },
    }
    ExitCode::SUCCESS
}

/// Why `plan` could not read the live clouds.
#[derive(Debug, thiserror::Error)]
enum LiveError {
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot reach Kubernetes (use --from for an offline plan): {0}")]
    Connect(#[source] kube::Error),
    #[error("cannot read InSyncCloud {cloud}: {source}")]
    Read {
        /// `namespace/name`.
        cloud: String,
        #[source]
        source: kube::Error,
    },
}

/// The live counterparts of `clouds` (those that exist), read with the kubeconfig.
fn live_clouds(clouds: &[InSyncCloud]) -> Result<Vec<InSyncCloud>, LiveError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(LiveError::Runtime)?;
    runtime.block_on(async {
        let client = kube::Client::try_default()
            .await
            .map_err(LiveError::Connect)?;
        let mut live = Vec::new();
        for cloud in clouds {
            let api: kube::Api<InSyncCloud> =
                kube::Api::namespaced(client.clone(), cloud.cloud_namespace());
            let name = cloud.cloud_name();
            match api.get_opt(name).await {
                Ok(Some(found)) => live.push(found),
                Ok(None) => {}
                Err(source) => {
                    return Err(LiveError::Read {
                        cloud: format!("{}/{name}", cloud.cloud_namespace()),
                        source,
                    });
                }
            }
        }
        Ok(live)
    })
}

/// A backup, restore or deletion step failed: the reason is what the backup's (or cloud's)
/// status shows. It goes to the pod's termination message file as well as to stderr: the
/// kubelet's fallback to the log's tail interleaves stdout and stderr as the runtime reads the
/// two pipes, so an INFO line written before the reason could end up after it.
fn runner_failed(step: &str, reason: &str) -> ExitCode {
    let line = format!("{step} failed: {reason}");
    eprintln!("{line}");
    // Outside a pod there is no such file to write: stderr is enough.
    let _ = std::fs::write(insync_operator::runner::TERMINATION_LOG, &line);
    ExitCode::from(1)
}

fn fail(error: &dyn std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(code)
}
