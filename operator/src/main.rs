//! `insync-operator`: print the CRD, render clouds, or run the controller.

use std::io::Read as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use insync_operator::cli;

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

#[derive(Subcommand)]
enum Command {
    /// Print the InSyncCloud CustomResourceDefinition as YAML.
    Crd,
    /// Print every object the operator would create for the clouds in a manifest (like `helm
    /// template`). Exits 2 when a cloud is invalid, listing every problem.
    Render {
        /// Manifest file with one or more InSyncCloud documents, or `-` for stdin.
        #[arg(short = 'f', long = "filename")]
        file: String,
    },
    /// Run the controller.
    Run(Box<insync_operator::controller::RunArgs>),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    insync_operator::install_crypto_provider();
    match cli.command {
        Command::Crd => match cli::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e, 1),
        },
        Command::Render { file } => render(&file),
        Command::Run(args) => {
            let runtime = match tokio::runtime::Builder::new_multi_thread()
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

fn render(file: &str) -> ExitCode {
    let text = if file == "-" {
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
    };
    let result = text
        .and_then(|text| cli::parse_clouds(file, &text))
        .and_then(|clouds| cli::render_stream(&clouds));
    match result {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(e @ (cli::CliError::Invalid(_) | cli::CliError::Parse { .. })) => fail(&e, 2),
        Err(e) => fail(&e, 1),
    }
}

fn fail(error: &dyn std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(code)
}
