//! `vmi`: the offline companion of the plugin. Subcommands work on files (kernel images,
//! event logs), never on a running guest.

use std::process::ExitCode;

const USAGE: &str = "\
usage: vmi <command> [args]

commands:
  report <log.jsonl> summarise an event log (processes, syscalls, files, modules);
                     --json, --perfetto <trace.json>, --html <report.html>:
                     run 'vmi report --help' for all options
  version            print the version
  help               print this help

The QEMU plugin itself is target/release/libvmi.so:
  qemu-system-x86_64 ... -plugin libvmi.so,conf=kernelinfo.conf,group=<group>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("version" | "--version" | "-V") => {
            println!("vmi {}", vmi::VERSION);
            ExitCode::SUCCESS
        }
        Some("report") => report(&args[1..]),
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("vmi: unknown command '{other}': run 'vmi help' for the list");
            ExitCode::from(2)
        }
        None => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// `vmi report`: all the work is in [`vmi::report`]; errors are rendered here, once.
fn report(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{}", vmi::report::USAGE);
        return ExitCode::SUCCESS;
    }
    let result = vmi::report::Options::parse(args)
        .and_then(|opts| vmi::report::run(&opts, &mut std::io::stdout().lock()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmi report: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
