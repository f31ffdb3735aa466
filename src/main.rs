//! The `reportstore` command: a thin dispatcher over the library (see `lib.rs`).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use reportstore::config::ServeConfig;
use reportstore::store::{Store, StoreConfig};

// glibc's malloc cost 14 % of the server's CPU under Metabase ingest (sled's batches, zstd's
// buffers, many threads); mimalloc gave about 12 % more legacy reports/s for about 100 MiB more
// peak RSS (`cargo bench --bench ingest`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "reportstore",
    version,
    about = "A replicated document store for CPAN Testers reports"
)]
struct Cli {
    /// Log format: `text` for people, `json` for log shippers.
    #[arg(
        long,
        global = true,
        env = "REPORTSTORE_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeConfig),
    /// Check a stopped store's invariants (gap-free log, every entry's value present and
    /// decodable, hashes matching) and print the result as JSON. Exit 1 on any problem.
    Check {
        /// The data directory the server used.
        #[arg(long, env = "REPORTSTORE_DATA_DIR", default_value = "reportstore-data")]
        data_dir: PathBuf,
    },
    /// Rebuild the search index of a stopped store from scratch: into a new directory, then
    /// swapped in place of `DIR/index`. Prints a JSON summary.
    Reindex {
        /// The data directory the server used.
        #[arg(long, env = "REPORTSTORE_DATA_DIR", default_value = "reportstore-data")]
        data_dir: PathBuf,
    },
    /// Promote a follower to leader under a new term (calls its admin endpoint).
    Promote {
        /// The follower's base URL.
        url: String,
        /// The replication token.
        #[arg(long, env = "REPORTSTORE_REPLICATION_TOKEN", hide_env_values = true)]
        replication_token: String,
    },
    /// Compare two nodes' logs by digests; name the first sequence where they differ.
    /// Exit 0 when the common range is identical, 1 when it differs.
    Verify {
        /// First node's base URL.
        url_a: String,
        /// Second node's base URL.
        url_b: String,
        /// The replication token.
        #[arg(long, env = "REPORTSTORE_REPLICATION_TOKEN", hide_env_values = true)]
        replication_token: String,
    },
    /// Train a zstd dictionary on generated reports (how `data/dictionaries/` was made).
    TrainDictionary {
        /// Where to write the dictionary.
        #[arg(long)]
        out: PathBuf,
        /// Number of generated sample documents.
        #[arg(long, default_value_t = 20_000)]
        samples: usize,
        /// Dictionary size in bytes.
        #[arg(long, default_value_t = 112_640)]
        size: usize,
        /// Generator seed.
        #[arg(long, default_value_t = 20_261_122)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    reportstore::server::configure_allocator();
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    match run(cli.command) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("reportstore: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(config) => serve(config),
        Command::Check { data_dir } => check(data_dir),
        Command::Promote {
            url,
            replication_token,
        } => promote(url, replication_token),
        Command::Verify {
            url_a,
            url_b,
            replication_token,
        } => verify(url_a, url_b, replication_token),
        Command::Reindex { data_dir } => reindex(data_dir),
        Command::TrainDictionary {
            out,
            samples,
            size,
            seed,
        } => train_dictionary(out, samples, size, seed),
    }
}

fn serve(config: ServeConfig) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(reportstore::server::serve(
        config,
        reportstore::server::shutdown_signal(),
        |_| {},
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn promote(url: String, token: String) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = reqwest::Client::builder().no_proxy().build()?;
        let response = client
            .post(format!(
                "{}/replication/v1/promote",
                url.trim_end_matches('/')
            ))
            .bearer_auth(token)
            .send()
            .await?;
        let status = response.status();
        println!("{}", response.text().await?);
        Ok(if status.is_success() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    })
}

fn verify(url_a: String, url_b: String, token: String) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(reportstore::replication::verify::verify(
        &url_a, &url_b, &token,
    ))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if report.identical {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn check(data_dir: PathBuf) -> anyhow::Result<ExitCode> {
    let store = Store::open(&data_dir.join("store"), &StoreConfig::default())?;
    let report = store.check()?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(if report.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn reindex(data_dir: PathBuf) -> anyhow::Result<ExitCode> {
    // Holding the store (sled's lock) guarantees no server runs on this data directory, so the
    // index being replaced has no live writer.
    let store = Store::open(&data_dir.join("store"), &StoreConfig::default())?;
    let summary = reportstore::index::reindex(
        &store,
        &data_dir.join("index"),
        reportstore::index::IndexerConfig::default(),
    )?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(ExitCode::SUCCESS)
}

fn train_dictionary(
    out: PathBuf,
    samples: usize,
    size: usize,
    seed: u64,
) -> anyhow::Result<ExitCode> {
    let documents = reportstore::generator::training_samples(seed, samples);
    let dictionary = reportstore::codec::train_dictionary(&documents, size)?;
    std::fs::write(&out, &dictionary)?;
    println!(
        "wrote {} ({} bytes, dictionary id {:?}) from {} samples",
        out.display(),
        dictionary.len(),
        reportstore::codec::dictionary_id(&dictionary),
        documents.len()
    );
    Ok(ExitCode::SUCCESS)
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("REPORTSTORE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
