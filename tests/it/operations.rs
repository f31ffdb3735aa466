//! Operational promises: a full queue is refused with 503 and Retry-After (not buffered), a
//! store that cannot be opened is refused with a clear message and left untouched, and the
//! continuous change feed streams entries and heartbeats.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{ServerProcess, binary, client};
use crate::v3::sample_report;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_refused_with_retry_after() {
    let directory = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(directory.path(), &["--queue-depth", "1"]);
    let client = client();
    let mut requests = Vec::new();
    for index in 0..200 {
        let client = client.clone();
        let base = server.base_url.clone();
        requests.push(tokio::spawn(async move {
            let report = sample_report("pass", &format!("{index} {}", "x".repeat(50_000)));
            let response = client
                .post(format!("{base}/v3/report"))
                .json(&report)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .map(|value| value.to_str().unwrap().to_string());
            let body: Value = response.json().await.unwrap();
            (status, retry_after, body)
        }));
    }
    let mut stored = 0u64;
    let mut refused = 0;
    for request in requests {
        let (status, retry_after, body) = request.await.unwrap();
        match status {
            201 => stored += 1,
            503 => {
                refused += 1;
                assert_eq!(retry_after.as_deref(), Some("1"));
                assert!(
                    body["errors"][0]["message"]
                        .as_str()
                        .unwrap()
                        .contains("queue is full"),
                    "{body}"
                );
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert!(
        refused > 0,
        "200 concurrent reports never filled a queue of depth 1"
    );
    assert_eq!(
        crate::support::last_seq(&client, &server.base_url).await,
        stored,
        "every 201 stored, nothing else"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_be_opened_is_refused_and_left_untouched() {
    let directory = tempfile::tempdir().unwrap();
    // Held by a running server: a second process must refuse, not share or reset it.
    let server = ServerProcess::start(directory.path(), &[]);
    let output = Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(directory.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains("cannot open the store") && message.contains("nothing was changed"),
        "{message}"
    );
    drop(server);

    // Not a reportstore store (damaged or foreign files): refused, and the files stay as they were.
    let damaged = tempfile::tempdir().unwrap();
    let store_dir = damaged.path().join("store");
    std::fs::create_dir_all(&store_dir).unwrap();
    std::fs::write(store_dir.join("conf"), b"this is not sled's configuration").unwrap();
    std::fs::write(store_dir.join("db"), vec![0xAB; 4096]).unwrap();
    let before: Vec<(String, Vec<u8>)> = ["conf", "db"]
        .iter()
        .map(|name| {
            (
                name.to_string(),
                std::fs::read(store_dir.join(name)).unwrap(),
            )
        })
        .collect();
    let output = Command::new(binary())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(damaged.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(message.contains("cannot open the store"), "{message}");
    for (name, bytes) in before {
        assert_eq!(
            std::fs::read(store_dir.join(&name)).unwrap(),
            bytes,
            "{name} was modified"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_continuous_feed_streams_entries_and_heartbeats() {
    let directory = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(directory.path(), &["--replication-token", "t"]);
    let client = client();
    let response = client
        .post(format!("{}/v3/report", server.base_url))
        .json(&sample_report("pass", "first"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["x-reportstore-seq"], "1");
    let mut feed = client
        .get(format!(
            "{}/replication/v1/changes?since=0&feed=continuous&heartbeat_ms=100",
            server.base_url
        ))
        .bearer_auth("t")
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), 200);
    let mut lines: Vec<Value> = Vec::new();
    let mut buffer = Vec::new();
    let mut posted_second = false;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while lines.iter().filter(|line| line["type"] == "entry").count() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "feed lines so far: {lines:?}"
        );
        let chunk = tokio::time::timeout(Duration::from_secs(5), feed.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            lines.push(serde_json::from_slice(&line).unwrap());
        }
        let heartbeats = lines.iter().filter(|line| line["type"] == "status").count();
        if heartbeats >= 2 && !posted_second {
            // Idle: heartbeats flow. Now a new report must arrive on the same stream.
            let response = client
                .post(format!("{}/v3/report", server.base_url))
                .json(&sample_report("fail", "second"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
            posted_second = true;
        }
    }
    let entries: Vec<&Value> = lines
        .iter()
        .filter(|line| line["type"] == "entry")
        .collect();
    assert_eq!(entries[0]["seq"], 1);
    assert_eq!(entries[1]["seq"], 2);
    assert!(lines.iter().filter(|line| line["type"] == "status").count() >= 2);
}
