//! `pulse`: see the crate documentation in lib.rs for what each subcommand
//! measures. Exit status: 0 all good, 1 the run finished but connections or
//! memory reads failed (unless --allow-errors), 2 the run could not be done.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use serde::Serialize;

use pulse::cli::{Cli, Command};
use pulse::servers::{Server, Service};
use pulse::{fdlimit, fleet, pingpong, rate, slowloris, spike, throughput, udp};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs one subcommand; `Ok(false)` means it finished with failures.
async fn run(command: Command) -> anyhow::Result<bool> {
    match command {
        Command::Spike(a) => {
            let report = spike::run(&a).await?;
            Ok(verdict(report.failed, a.allow_errors))
        }
        Command::Fleet(a) => {
            let report = fleet::run(&a).await?;
            Ok(verdict(report.failed, a.allow_errors))
        }
        Command::Throughput(a) => {
            fdlimit::raise().context("raising the open-files limit")?;
            let report = throughput::run(&a).await?;
            print!("{}", throughput::render_text(&report));
            if let Some(dir) = &a.out {
                write_json(dir, "throughput.json", &report)?;
            }
            Ok(verdict(!report.fails.is_empty(), a.allow_errors))
        }
        Command::Rate(a) => {
            fdlimit::raise().context("raising the open-files limit")?;
            let report = rate::run(&a).await?;
            print!("{}", rate::render_text(&report));
            if let Some(dir) = &a.out {
                write_json(dir, "rate.json", &report)?;
            }
            Ok(verdict(!report.fails.is_empty(), a.allow_errors))
        }
        Command::Udp(a) => {
            fdlimit::raise().context("raising the open-files limit")?;
            let report = udp::run(&a).await?;
            print!("{}", udp::render_text(&report));
            if let Some(dir) = &a.out {
                write_json(dir, "udp.json", &report)?;
            }
            Ok(verdict(!report.fails.is_empty(), a.allow_errors))
        }
        Command::UdpIdle(a) => {
            fdlimit::raise().context("raising the open-files limit")?;
            let report = udp::run_idle(&a).await?;
            print!("{}", udp::render_idle(&report));
            if let Some(dir) = &a.out {
                write_json(dir, "udp_idle.json", &report)?;
            }
            Ok(verdict(!report.fails.is_empty(), a.allow_errors))
        }
        Command::Slowloris(a) => {
            let limit = fdlimit::raise().context("raising the open-files limit")?;
            let in_use = fdlimit::open_now().unwrap_or(0);
            let what = format!("{} stalled connections", a.stalled);
            fdlimit::check(a.stalled as u64, in_use, limit, &what, "")
                .map_err(anyhow::Error::msg)?;
            let report = slowloris::run(&a).await?;
            print!("{}", slowloris::render_text(&report));
            if let Some(dir) = &a.out {
                write_json(dir, "slowloris.json", &report)?;
            }
            Ok(verdict(!report.problems.is_empty(), a.allow_errors))
        }
        Command::Pingpong(a) => {
            // Plain blocking sockets and a spin loop: off the runtime's workers.
            let out = a.out.clone();
            let report = tokio::task::spawn_blocking(move || pingpong::run(&a))
                .await
                .context("pingpong thread")??;
            print!("{}", pingpong::render_text(&report));
            if let Some(dir) = &out {
                write_json(dir, "pingpong.json", &report)?;
            }
            Ok(true)
        }
        Command::PingpongEcho(a) => {
            pingpong::echo(&a)?;
            Ok(true)
        }
        Command::Sink(a) => {
            let limit = fdlimit::raise().context("raising the open-files limit")?;
            let sink = Server::start(a.listen, Service::Sink)
                .await
                .with_context(|| format!("binding {}", a.listen))?;
            println!(
                "sink listening on {} (open-files limit {})",
                sink.addr, limit.soft
            );
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tokio::select! {
                    _ = tick.tick() => eprintln!(
                        "sink: {} open, {} failed accepts",
                        sink.open(),
                        sink.accept_errors()
                    ),
                    r = tokio::signal::ctrl_c() => {
                        r.context("waiting for Ctrl-C")?;
                        return Ok(true);
                    }
                }
            }
        }
    }
}

fn verdict(failed: bool, allow_errors: bool) -> bool {
    if failed {
        let note = if allow_errors {
            " (allowed by --allow-errors)"
        } else {
            ""
        };
        eprintln!("pulse: some connections or reads failed, counted above{note}");
    }
    !failed || allow_errors
}

fn write_json(dir: &Path, name: &str, value: &impl Serialize) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(value)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}
