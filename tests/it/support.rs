//! Shared test plumbing: real servers (in-process on a real socket, or real child processes
//! that can be SIGKILLed), the captured Metabase fixtures, and small HTTP helpers.
//! Everything talks to 127.0.0.1 only.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reportstore::config::ServeConfig;
use serde_json::Value;

/// The `reportstore` binary built for these tests.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_reportstore")
}

/// A reportstore server running as a child process.
pub struct ServerProcess {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    /// Its data directory.
    pub data_dir: PathBuf,
}

impl ServerProcess {
    /// Starts `reportstore serve` on a free port over `data_dir` and waits until it answers.
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> ServerProcess {
        std::fs::create_dir_all(data_dir).unwrap();
        let ready_file = data_dir.join("ready.addr");
        let _ = std::fs::remove_file(&ready_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join("server.log"))
            .unwrap();
        let child = Command::new(binary())
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--ready-file")
            .arg(&ready_file)
            .args(extra_args)
            .env("REPORTSTORE_LOG", "info,tower_http=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start reportstore");
        let mut server = ServerProcess {
            child: Some(child),
            base_url: String::new(),
            data_dir: data_dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(address) = std::fs::read_to_string(&ready_file) {
                server.base_url = format!("http://{address}");
                break;
            }
            if let Some(status) = server.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("reportstore exited early with {status}: {}", server.log());
            }
            assert!(
                Instant::now() < deadline,
                "server did not start: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("server.log")).unwrap_or_default()
    }

    /// SIGKILL, and reap.
    pub fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM and wait for the exit; returns whether it exited successfully.
    pub fn terminate(mut self) -> bool {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status.success();
            }
            assert!(
                Instant::now() < deadline,
                "server did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A reportstore server running inside the test process, on a real socket.
pub struct InProcessServer {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<reportstore::Result<()>>>,
}

impl InProcessServer {
    /// Starts a server with `config` (its `listen` is replaced by 127.0.0.1:0).
    pub async fn start(mut config: ServeConfig) -> InProcessServer {
        config.listen = "127.0.0.1:0".parse().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (address_sender, address) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(reportstore::server::serve(
            config,
            async move {
                let _ = stopped.await;
            },
            move |bound| {
                let _ = address_sender.send(bound);
            },
        ));
        let address = address.await.expect("server failed to start");
        InProcessServer {
            base_url: format!("http://{address}"),
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Starts a server with default settings over `data_dir`.
    pub async fn start_in(data_dir: &Path) -> InProcessServer {
        Self::start(ServeConfig::with_data_dir(
            data_dir.to_path_buf(),
            "127.0.0.1:0".parse().unwrap(),
        ))
        .await
    }

    /// Graceful shutdown; waits until the store is closed.
    pub async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.take().unwrap().await.unwrap().unwrap();
    }
}

/// An HTTP client that never uses a proxy.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// `GET /health` as JSON.
pub async fn health(client: &reqwest::Client, base_url: &str) -> Value {
    get_json(client, format!("{base_url}/health")).await
}

/// `GET url` as JSON (panics on a transport error or a body that is not JSON).
pub async fn get_json(client: &reqwest::Client, url: String) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// The Prometheus text of `/metrics`.
pub async fn metrics_text(client: &reqwest::Client, base_url: &str) -> String {
    client
        .get(format!("{base_url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The store's `last_seq` as `/health` reports it.
pub async fn last_seq(client: &reqwest::Client, base_url: &str) -> u64 {
    health(client, base_url).await["last_seq"].as_u64().unwrap()
}

/// Runs `reportstore check` on a stopped store and returns its JSON report and exit success.
pub fn check_store(data_dir: &Path) -> (Value, bool) {
    let output = Command::new(binary())
        .arg("check")
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "check printed no JSON: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (report, output.status.success())
}

/// One captured HTTP request of a real Perl client (`tests/data/metabase/`).
#[derive(Debug, Clone)]
pub struct Fixture {
    /// HTTP method.
    pub method: String,
    /// Request path (`/api/v1/...`).
    pub path: String,
    /// Headers as sent, in order.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: String,
}

/// Loads a fixture by name.
pub fn fixture(name: &str) -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/metabase")
        .join(format!("{name}.json"));
    let raw: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    Fixture {
        method: raw["method"].as_str().unwrap().to_string(),
        path: raw["path"].as_str().unwrap().to_string(),
        headers: raw["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|pair| {
                (
                    pair[0].as_str().unwrap().to_string(),
                    pair[1].as_str().unwrap().to_string(),
                )
            })
            .collect(),
        body: raw["body"].as_str().unwrap_or_default().to_string(),
    }
}

impl Fixture {
    /// Sends the request as the client sent it: same method, path, headers (including the odd
    /// `Content_Type`) and body. Host and Content-Length are set by the HTTP client.
    pub async fn send(&self, client: &reqwest::Client, base_url: &str) -> reqwest::Response {
        self.send_to_path(client, base_url, &self.path).await
    }

    /// Like [`Fixture::send`] with another path (e.g. the `/beta/` prefix).
    pub async fn send_to_path(
        &self,
        client: &reqwest::Client,
        base_url: &str,
        path: &str,
    ) -> reqwest::Response {
        let method = reqwest::Method::from_bytes(self.method.as_bytes()).unwrap();
        let mut request = client.request(method, format!("{base_url}{path}"));
        for (name, value) in &self.headers {
            if name.eq_ignore_ascii_case("host") || name.eq_ignore_ascii_case("content-length") {
                continue;
            }
            request = request.header(name.as_str(), value.as_str());
        }
        if !self.body.is_empty() {
            request = request.body(self.body.clone());
        }
        request.send().await.unwrap()
    }

    /// The three levels of a submit body: (level-1 core metadata, LegacyReport content).
    pub fn submission_levels(&self) -> (Value, Value) {
        let level_one: Value = serde_json::from_str(&self.body).unwrap();
        let level_two: Value =
            serde_json::from_str(level_one["content"].as_str().unwrap()).unwrap();
        let legacy = level_two
            .as_array()
            .unwrap()
            .iter()
            .find(|fact| fact["metadata"]["core"]["type"] == "CPAN-Testers-Fact-LegacyReport")
            .unwrap();
        let content: Value = serde_json::from_str(legacy["content"].as_str().unwrap()).unwrap();
        (level_one["metadata"]["core"].clone(), content)
    }
}
