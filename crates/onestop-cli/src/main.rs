//! `onestop`: settle a medical bill through every tier in one step.
//!
//! `onestop calc` splits one bill from files and prints the result; the binary stays thin over
//! `onestop-policy` (policy files), `onestop-api` (input and output formats) and `onestop-core`
//! (the engine). Every bad input ends with its stable code on stderr and exit status 2.

mod calc;
mod clearing;
mod cpu;
mod crash;
mod demo;
mod federated_load;
mod load;
mod serve;
mod table;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "onestop",
    version,
    about = "One-stop settlement of medical bills across every tier of China's medical \
             security (一站式结算)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the service on a temporary SQLite file, settle a synthetic day through it and keep
    /// it answering (演示).
    Demo(demo::DemoArgs),
    /// Run the settlement service (结算服务).
    Serve(serve::ServeArgs),
    /// Split one bill across every tier and explain each amount (试算).
    Calc(calc::CalcArgs),
    /// Load-test settle from many concurrent hospital clients on loopback (benchmark).
    Load(load::LoadArgs),
    /// Kill -9 the server under load, restart it, and check exactly-once settlement.
    CrashTest(crash::CrashArgs),
    /// Write every region's clearing statement of a month as CSV and JSON (月度清算).
    Clearing(clearing::ClearingArgs),
    /// Issue a credential (an agency's first token) straight into the database.
    Token(serve::TokenArgs),
}

/// Exit status for bad input (a rejection, a bad policy file, an unreadable file).
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit status for a bug: an invariant failed.
pub const EXIT_BUG: u8 = 70;

/// Whether a panic is the standard library's on writing to a closed standard output (`onestop
/// calc --json | head`): a reader that stopped early, not a bug.
fn closed_stdout(payload: &(dyn std::any::Any + Send)) -> bool {
    let text = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("");
    text.starts_with("failed printing to stdout")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A reader that stopped early ends the command quietly, as other command-line tools do.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !closed_stdout(info.payload()) {
            report(info);
        }
    }));
    let outcome = std::panic::catch_unwind(|| match cli.command {
        Command::Calc(args) => calc::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Token(args) => serve::token(&args),
        Command::CrashTest(args) => crash::run(&args),
        Command::Load(args) => load::run(&args),
        Command::Clearing(args) => clearing::run(&args),
    });
    match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
        // 141: killed by SIGPIPE, as a shell reports a tool whose reader went away.
        Err(payload) if closed_stdout(payload.as_ref()) => ExitCode::from(141),
        Err(_) => {
            eprintln!(
                "error: internal error: an invariant failed; this is a bug, \
                 please report it with the input"
            );
            ExitCode::from(EXIT_BUG)
        }
    }
}
