//! `manifest-read`: how long reading manifest files takes and how much memory it peaks at.
//!
//! ```text
//! manifest-read [--collect] FILE...
//! ```
//!
//! Reads the files as `clusterdns --manifests` does, with the server's allocator, handing every
//! object to a sink that drops it (`--collect`: into a `Cluster`, as `manifest::load` does),
//! and prints the objects read, the time and the process's peak RSS (`VmHWM`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clusterdns::ops::process;
use clusterdns::sources::{manifest, PodChanges};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let mut collect = false;
    let mut paths = Vec::new();
    for arg in std::env::args_os().skip(1) {
        if arg == "--collect" {
            collect = true;
        } else {
            paths.push(PathBuf::from(arg));
        }
    }
    let started = Instant::now();
    let result = if collect {
        manifest::load(&paths, false).map(|(_, report)| report)
    } else {
        manifest::read(&paths, PodChanges::default(), &mut drop)
    };
    let took = started.elapsed();
    match result {
        Ok(report) => {
            println!(
                "manifest-read: {} objects from {} files in {:.2} s ({}), peak RSS {}",
                report.objects,
                report.files,
                took.as_secs_f64(),
                if collect { "collected" } else { "streamed" },
                peak_rss()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("manifest-read: {error}");
            ExitCode::FAILURE
        }
    }
}

/// `VmHWM` of this process.
fn peak_rss() -> String {
    process::status_kib("self", "VmHWM:")
        .map_or_else(|| "unknown".to_owned(), |kib| format!("{kib} kB"))
}
