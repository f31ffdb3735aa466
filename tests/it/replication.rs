//! Replication with real processes on 127.0.0.1: followers converge under load (one SIGKILLed
//! mid-stream, one bootstrapping from empty), semi-synchronous failover with promotion and
//! fencing, and the refusals (wrong token, since beyond the log, a corrupted entry, a gap).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use reportstore::generator::ReportGenerator;
use serde_json::Value;

use crate::support::{ServerProcess, binary, check_store, client, fixture, get_json, health};

const TOKEN: &str = "replication-test-token";

fn leader(directory: &Path, extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--replication-token", TOKEN];
    args.extend_from_slice(extra);
    ServerProcess::start(directory, &args)
}

fn follower(directory: &Path, leader_url: &str, extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--replication-token", TOKEN, "--follow", leader_url];
    args.extend_from_slice(extra);
    ServerProcess::start(directory, &args)
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn last_seq_of(client: &reqwest::Client, base: &str) -> u64 {
    health(client, base).await["last_seq"].as_u64().unwrap_or(0)
}

async fn wait_caught_up(client: &reqwest::Client, leader_url: &str, follower_url: &str) {
    let target = last_seq_of(client, leader_url).await;
    wait_until(
        "the follower caught up",
        Duration::from_secs(60),
        || async { last_seq_of(client, follower_url).await >= target },
    )
    .await;
}

fn verify(a: &str, b: &str) -> Value {
    let output = Command::new(binary())
        .args(["verify", a, b, "--replication-token", TOKEN])
        .output()
        .unwrap();
    serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
        panic!(
            "verify printed no JSON: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

async fn post_v3(client: &reqwest::Client, base: &str, document: &Value) -> Option<String> {
    let response = client
        .post(format!("{base}/v3/report"))
        .json(document)
        .send()
        .await
        .ok()?;
    if response.status() != 201 {
        return None;
    }
    Some(
        response.json::<Value>().await.ok()?["id"]
            .as_str()?
            .to_string(),
    )
}

async fn index_caught_up(client: &reqwest::Client, base: &str) -> bool {
    let health = health(client, base).await;
    health["index"]["lag_entries"].as_u64() == Some(0)
        && health["index"]["indexed_seq"].as_u64() == health["last_seq"].as_u64()
}

async fn search_answer(client: &reqwest::Client, base: &str) -> Value {
    let response = client
        .get(format!("{base}/v3/search?q=test&sort=newest&limit=50"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut answer: Value = response.json().await.unwrap();
    // Timing fields differ per node; the answer itself must not.
    if let Some(object) = answer.as_object_mut() {
        object.remove("took_ms");
    }
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_converge_under_load_survive_sigkill_and_bootstrap_from_empty() {
    let directory = tempfile::tempdir().unwrap();
    let client = client();
    let leader = leader(&directory.path().join("leader"), &[]);
    let follower_one = follower(&directory.path().join("f1"), &leader.base_url, &[]);
    let follower_two = follower(&directory.path().join("f2"), &leader.base_url, &[]);

    // Ingest: v3 reports and real Metabase submissions, while a follower is killed.
    assert_eq!(
        fixture("cpan-reporter-register")
            .send(&client, &leader.base_url)
            .await
            .status(),
        201
    );
    let ingest = {
        let client = client.clone();
        let base = leader.base_url.clone();
        tokio::spawn(async move {
            let mut generator = ReportGenerator::new(11);
            let testers = generator.testers().to_vec();
            let mut stored = 0;
            for index in 0..400 {
                let document = generator.next_report().to_v3_document(&testers);
                if post_v3(&client, &base, &document).await.is_some() {
                    stored += 1;
                }
                if index == 100 {
                    for name in [
                        "cpan-reporter-pass",
                        "cpan-reporter-fail",
                        "cpan-reporter-na",
                    ] {
                        assert_eq!(fixture(name).send(&client, &base).await.status(), 201);
                    }
                }
            }
            stored
        })
    };
    wait_until(
        "follower one applied something",
        Duration::from_secs(30),
        || async { last_seq_of(&client, &follower_one.base_url).await > 50 },
    )
    .await;
    follower_one.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let follower_one = follower(&directory.path().join("f1"), &leader.base_url, &[]);
    assert_eq!(ingest.await.unwrap(), 400);

    // A new, empty follower bootstraps from sequence 0.
    let follower_three = follower(&directory.path().join("f3"), &leader.base_url, &[]);
    for node in [&follower_one, &follower_two, &follower_three] {
        wait_caught_up(&client, &leader.base_url, &node.base_url).await;
    }
    let leader_seq = last_seq_of(&client, &leader.base_url).await;
    assert_eq!(leader_seq, 404, "1 registration + 403 reports");

    // Identical digests.
    for node in [&follower_one, &follower_two, &follower_three] {
        let report = verify(&leader.base_url, &node.base_url);
        assert_eq!(report["identical"], true, "{report}");
        assert_eq!(report["compared"], leader_seq);
    }

    // The leader knows its followers.
    let status: Value = get_json(
        &client,
        format!("{}/replication/v1/status", leader.base_url),
    )
    .await;
    let followers = status["followers"].as_array().unwrap();
    assert!(followers.len() >= 3, "{status}");
    for entry in followers
        .iter()
        .filter(|entry| entry["applied_seq"] == leader_seq)
    {
        assert_eq!(entry["lag_entries"], 0);
    }
    assert!(
        followers
            .iter()
            .filter(|entry| entry["applied_seq"] == leader_seq)
            .count()
            >= 3,
        "{status}"
    );

    // Replication lag is in the metrics of both sides.
    let leader_metrics = crate::support::metrics_text(&client, &leader.base_url).await;
    assert!(
        leader_metrics.contains("reportstore_replication_follower_lag_entries"),
        "{leader_metrics}"
    );
    let follower_metrics = crate::support::metrics_text(&client, &follower_two.base_url).await;
    assert!(
        follower_metrics.contains(&format!("reportstore_replication_applied_seq {leader_seq}")),
        "{follower_metrics}"
    );

    // Followers serve reads and searches with the leader's answers, and refuse writes.
    for node in [&follower_one, &follower_two, &follower_three] {
        wait_until(
            "the follower's index caught up",
            Duration::from_secs(30),
            || async { index_caught_up(&client, &node.base_url).await },
        )
        .await;
    }
    wait_until(
        "the leader's index caught up",
        Duration::from_secs(30),
        || async { index_caught_up(&client, &leader.base_url).await },
    )
    .await;
    let leader_answer = search_answer(&client, &leader.base_url).await;
    let leader_releases = client
        .get(format!("{}/v3/release", leader.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for node in [&follower_one, &follower_two, &follower_three] {
        assert_eq!(search_answer(&client, &node.base_url).await, leader_answer);
        let releases = client
            .get(format!("{}/v3/release", node.base_url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(releases, leader_releases);
        let (core, _) = fixture("cpan-reporter-fail").submission_levels();
        let guid = core["guid"].as_str().unwrap();
        let response = client
            .get(format!("{}/api/v1/guid/{guid}", node.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let response = fixture("cpan-reporter-unknown")
            .send(&client, &node.base_url)
            .await;
        assert_eq!(response.status(), 503);
        let error = response.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(error.contains(&leader.base_url), "{error}");
    }

    // Each store passes its own consistency check (gap-free log, counters equal a recount).
    for node in [follower_one, follower_two, follower_three] {
        let data_dir = node.data_dir.clone();
        assert!(node.terminate());
        let (report, consistent) = check_store(&data_dir);
        assert!(consistent, "{report}");
        assert_eq!(report["last_seq"], leader_seq);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn semi_synchronous_failover_loses_nothing_and_fences_the_old_leader() {
    let directory = tempfile::tempdir().unwrap();
    let client = client();
    let (leader_dir, f1_dir, f2_dir) = (
        directory.path().join("leader"),
        directory.path().join("f1"),
        directory.path().join("f2"),
    );
    let old_leader = leader(
        &leader_dir,
        &["--sync-replicas", "1", "--sync-timeout-ms", "3000"],
    );
    let follower_one = follower(&f1_dir, &old_leader.base_url, &[]);
    let follower_two = follower(&f2_dir, &old_leader.base_url, &[]);
    let old_leader_url = old_leader.base_url.clone();

    // Concurrent clients; the leader is SIGKILLed while they write.
    let mut writers = Vec::new();
    for writer in 0..4 {
        let client = client.clone();
        let base = old_leader.base_url.clone();
        writers.push(tokio::spawn(async move {
            let mut generator = ReportGenerator::new(100 + writer);
            let testers = generator.testers().to_vec();
            let mut acknowledged = Vec::new();
            loop {
                let document = generator.next_report().to_v3_document(&testers);
                match client
                    .post(format!("{base}/v3/report"))
                    .json(&document)
                    .send()
                    .await
                {
                    Ok(response) if response.status() == 201 => {
                        acknowledged.push(
                            response.json::<Value>().await.unwrap()["id"]
                                .as_str()
                                .unwrap()
                                .to_string(),
                        );
                    }
                    Ok(response) if response.status() == 503 => {}
                    Ok(response) => panic!("unexpected status {}", response.status()),
                    Err(_) => return acknowledged,
                }
            }
        }));
    }
    wait_until(
        "some reports were acknowledged",
        Duration::from_secs(30),
        || async { last_seq_of(&client, &follower_one.base_url).await > 60 },
    )
    .await;
    old_leader.kill();
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    assert!(!acknowledged.is_empty());

    // Promote the follower that applied the most.
    let seq_one = last_seq_of(&client, &follower_one.base_url).await;
    let seq_two = last_seq_of(&client, &follower_two.base_url).await;
    let (new_leader, other) = if seq_one >= seq_two {
        (follower_one, follower_two)
    } else {
        (follower_two, follower_one)
    };
    let output = Command::new(binary())
        .args([
            "promote",
            &new_leader.base_url,
            "--replication-token",
            TOKEN,
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let promoted: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(promoted["role"]["role"], "leader");
    assert_eq!(promoted["term"], 1);

    // Every acknowledged report is on the new leader.
    for id in &acknowledged {
        let response = client
            .get(format!("{}/v3/report/{id}", new_leader.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "acknowledged report {id} lost in the failover"
        );
    }
    // Clients continue against it; the other follower re-points to it and converges.
    let mut generator = ReportGenerator::new(999);
    let testers = generator.testers().to_vec();
    for _ in 0..20 {
        let document = generator.next_report().to_v3_document(&testers);
        assert!(
            post_v3(&client, &new_leader.base_url, &document)
                .await
                .is_some()
        );
    }
    let other_dir = other.data_dir.clone();
    other.kill();
    let other = follower(&other_dir, &new_leader.base_url, &[]);
    wait_until(
        "the other follower followed the new leader",
        Duration::from_secs(60),
        || async {
            let health = health(&client, &other.base_url).await;
            health["last_seq"] == health_seq(&client, &new_leader.base_url).await
                || health["following"]["state"] == "stopped"
        },
    )
    .await;
    let other_health = health(&client, &other.base_url).await;
    println!(
        "failover: {} reports acknowledged before the kill; promoted at seq {}; other follower: {}",
        acknowledged.len(),
        promoted["last_seq"],
        other_health["following"]["state"]
    );
    if other_health["following"]["state"] == "stopped" {
        // It had applied an entry the new leader never got: that must be said, not hidden.
        assert!(
            other_health["following"]["last_error"]
                .as_str()
                .unwrap()
                .contains("diverged"),
            "{other_health}"
        );
    } else {
        assert_eq!(
            verify(&new_leader.base_url, &other.base_url)["identical"],
            true
        );
    }

    // The old leader comes back: with --peers it learns of term 1 and refuses writes.
    let peers = format!("{},{}", new_leader.base_url, other.base_url);
    let old_leader = leader(&leader_dir, &["--peers", &peers]);
    wait_until(
        "the old leader fenced itself",
        Duration::from_secs(30),
        || async { health(&client, &old_leader.base_url).await["status"] == "fenced" },
    )
    .await;
    let document = generator.next_report().to_v3_document(&testers);
    let response = client
        .post(format!("{}/v3/report", old_leader.base_url))
        .json(&document)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.text().await.unwrap().contains("fenced"));
    // A node of the new term will not take the old leader's feed either.
    let feed = client
        .get(format!(
            "{}/replication/v1/changes?since=0",
            old_leader.base_url
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), 409);
    let _ = old_leader_url;

    // Rejoining as a follower: it catches up, or it says clearly that its log diverged.
    old_leader.kill();
    let rejoined = follower(&leader_dir, &new_leader.base_url, &[]);
    wait_until(
        "the old leader rejoined or reported divergence",
        Duration::from_secs(60),
        || async {
            let health = health(&client, &rejoined.base_url).await;
            health["last_seq"] == health_seq(&client, &new_leader.base_url).await
                || health["following"]["state"] == "stopped"
        },
    )
    .await;
    let rejoined_health = health(&client, &rejoined.base_url).await;
    println!(
        "old leader rejoined as follower: state {}, last_seq {}",
        rejoined_health["following"]["state"], rejoined_health["last_seq"]
    );
    if rejoined_health["following"]["state"] == "stopped" {
        let error = rejoined_health["following"]["last_error"].as_str().unwrap();
        assert!(
            error.contains("diverged") && error.contains("empty follower"),
            "{error}"
        );
    } else {
        assert_eq!(
            verify(&new_leader.base_url, &rejoined.base_url)["identical"],
            true
        );
    }
}

async fn health_seq(client: &reqwest::Client, base: &str) -> Value {
    health(client, base).await["last_seq"].clone()
}

/// A stand-in leader that serves a fixed feed body: tampered copies of a real leader's lines.
async fn serve_feed(body: String) -> String {
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/replication/v1/changes",
            get(move || {
                let body = body.clone();
                async move { ([("content-type", "application/x-ndjson")], body) }
            }),
        )
        .route("/replication/v1/status", get(|| async { "{}" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tokens_corrupted_entries_and_gaps_are_refused() {
    let directory = tempfile::tempdir().unwrap();
    let client = client();
    let leader = leader(&directory.path().join("leader"), &[]);
    let mut generator = ReportGenerator::new(5);
    let testers = generator.testers().to_vec();
    for _ in 0..3 {
        let document = generator.next_report().to_v3_document(&testers);
        assert!(
            post_v3(&client, &leader.base_url, &document)
                .await
                .is_some()
        );
    }
    let feed_url = format!("{}/replication/v1/changes?since=0", leader.base_url);

    // No token, a wrong token: 401. A follower with the wrong token applies nothing.
    assert_eq!(client.get(&feed_url).send().await.unwrap().status(), 401);
    assert_eq!(
        client
            .get(&feed_url)
            .bearer_auth("nope")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let wrong = ServerProcess::start(
        &directory.path().join("wrong"),
        &["--replication-token", "nope", "--follow", &leader.base_url],
    );
    wait_until(
        "the follower reported the refusal",
        Duration::from_secs(20),
        || async {
            health(&client, &wrong.base_url).await["following"]["last_error"]
                .as_str()
                .is_some_and(|error| error.contains("401"))
        },
    )
    .await;
    assert_eq!(last_seq_of(&client, &wrong.base_url).await, 0);

    // since beyond the leader's log: refused clearly.
    let response = client
        .get(format!(
            "{}/replication/v1/changes?since=999",
            leader.base_url
        ))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("beyond"),
        "{body}"
    );
    assert_eq!(body["last_seq"], 3);

    // The real feed, then tampered copies served by a stand-in leader.
    let real = client
        .get(&feed_url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = real.lines().collect();
    assert_eq!(lines.len(), 4, "3 entries and a status line");
    let mut damaged_entry: Value = serde_json::from_str(lines[1]).unwrap();
    let value = damaged_entry["value"].as_str().unwrap().to_string();
    // Change the first base64 digit: still valid base64, other bytes.
    let flipped = match value.strip_prefix('A') {
        Some(rest) => format!("B{rest}"),
        None => format!("A{}", &value[1..]),
    };
    damaged_entry["value"] = Value::from(flipped);
    let corrupted = format!(
        "{}\n{}\n{}\n{}\n",
        lines[0], damaged_entry, lines[2], lines[3]
    );
    let gap = format!("{}\n{}\n{}\n", lines[0], lines[2], lines[3]);
    for (name, body, expected) in [("corrupted", corrupted, "checksum"), ("gap", gap, "gap")] {
        let stand_in = serve_feed(body).await;
        let node = follower(&directory.path().join(name), &stand_in, &[]);
        wait_until("the follower stopped", Duration::from_secs(20), || async {
            health(&client, &node.base_url).await["following"]["state"] == "stopped"
        })
        .await;
        let health = health(&client, &node.base_url).await;
        let error = health["following"]["last_error"].as_str().unwrap();
        assert!(error.contains(expected), "{name}: {error}");
        assert_eq!(
            health["last_seq"], 0,
            "{name}: nothing of a refused batch is applied"
        );
    }
}
