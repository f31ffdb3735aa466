//! What the benchmarks share: sizes from the environment, percentiles, and a real
//! `reportstore serve` child process on 127.0.0.1.
//!
//! Each benchmark includes this file as `mod common;` and uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A size or count from the environment, or `default`.
pub fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Whether `cargo bench` started this benchmark: it passes `--bench`, while a plain
/// `cargo test --benches` passes nothing and expects no work.
pub fn invoked_as_bench() -> bool {
    std::env::args().any(|argument| argument == "--bench")
}

/// A fresh working directory `<BENCH_DIR or the temp dir>/<name>-<pid>` (not created; any
/// leftover of the same name is removed).
pub fn bench_directory(name: &str) -> PathBuf {
    let directory = std::env::var_os("BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    directory
}

/// The value at `fraction` (0.5 = median) of an ascending list; zero when it is empty.
pub fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * fraction).round() as usize]
}

/// A `reportstore serve` process listening on an ephemeral port of 127.0.0.1, logging warnings
/// and errors to this process's stderr. Dropping it kills the server, so a benchmark that
/// panics does not leave one running (and eating the CPU the next run measures).
pub struct ServerProcess {
    pub child: Child,
    pub base_url: String,
    pub data_dir: PathBuf,
}

impl ServerProcess {
    /// Starts a server on `data_dir` with `extra` arguments and waits (up to `startup`, which
    /// includes opening a large store) until it listens.
    pub fn start(data_dir: &Path, extra: &[&str], startup: Duration) -> ServerProcess {
        std::fs::create_dir_all(data_dir).expect("create the data directory");
        let ready = data_dir.join("ready.addr");
        let _ = std::fs::remove_file(&ready);
        let child = Command::new(env!("CARGO_BIN_EXE_reportstore"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--ready-file")
            .arg(&ready)
            .args(extra)
            .env("REPORTSTORE_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start reportstore");
        let mut server = ServerProcess {
            child,
            base_url: String::new(),
            data_dir: data_dir.to_path_buf(),
        };
        let deadline = Instant::now() + startup;
        loop {
            if let Ok(address) = std::fs::read_to_string(&ready) {
                server.base_url = format!("http://{address}");
                return server;
            }
            // Dropping `server` kills the process.
            assert!(Instant::now() < deadline, "the server did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server with SIGTERM (a graceful shutdown) and waits for it.
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
