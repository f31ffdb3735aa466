//! The v3 API and the collector put: store, read back, idempotency, conflicts, caching, and
//! graceful shutdown of a real process.

use std::path::Path;

use serde_json::{Value, json};

use crate::support::{InProcessServer, ServerProcess, client, get_json, last_seq};

/// A valid v3 report.
pub fn sample_report(grade: &str, text: &str) -> Value {
    json!({
        "reporter": { "name": "Test Er", "email": "tester@example.invalid" },
        "environment": {
            "language": { "name": "Perl 5", "version": "5.36.0", "archname": "x86_64-linux" },
            "system": { "osname": "linux", "osversion": "6.1.0" },
            "user_agent": "reportstore-tests/1"
        },
        "distribution": { "name": "Foo-Bar", "version": "1.23" },
        "result": { "grade": grade, "output": { "uncategorized": text } }
    })
}

fn data_files(folder: &str) -> Vec<(String, Vec<u8>)> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(folder);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "json")
        })
        .map(|path| {
            (
                path.file_name().unwrap().to_string_lossy().to_string(),
                std::fs::read(&path).unwrap(),
            )
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no documents in {}", directory.display());
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_reports_round_trip_with_ids_caching_and_idempotency() {
    let directory = tempfile::tempdir().unwrap();
    let server = InProcessServer::start_in(directory.path()).await;
    let client = client();
    let base = &server.base_url;

    // Server-assigned id and created.
    let report = sample_report("fail", "t/01-basic.t .. Failed 1/3 subtests");
    let response = client
        .post(format!("{base}/v3/report"))
        .json(&report)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(location, format!("/v3/report/{id}"));
    let response = client
        .get(format!("{base}{location}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let etag = response.headers()["etag"].to_str().unwrap().to_string();
    let stored: Value = response.json().await.unwrap();
    assert_eq!(stored["id"], id.as_str());
    assert!(stored["created"].as_str().unwrap().ends_with('Z'));
    let mut expected = report.clone();
    expected["id"] = json!(id);
    expected["created"] = stored["created"].clone();
    assert_eq!(stored, expected);
    let response = client
        .get(format!("{base}{location}"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 304);

    // A client-chosen id: resubmitting is a success without a new sequence number, with key
    // order changed too; other content under the same id is a conflict.
    let mut with_id = sample_report("pass", "All tests successful.");
    with_id["id"] = json!("0190F1A2-3B4C-7D5E-8F60-718293A4B5C6");
    let response = client
        .post(format!("{base}/v3/report"))
        .json(&with_id)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(
        response.json::<Value>().await.unwrap()["id"],
        "0190f1a2-3b4c-7d5e-8f60-718293a4b5c6"
    );
    let seq = last_seq(&client, base).await;
    let reordered = serde_json::to_string(&with_id).unwrap();
    let reordered: Value = serde_json::from_str(&reordered).unwrap();
    let response = client
        .post(format!("{base}/v3/report"))
        .json(&reordered)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(last_seq(&client, base).await, seq);
    let mut changed = with_id.clone();
    changed["result"]["grade"] = json!("fail");
    let response = client
        .post(format!("{base}/v3/report"))
        .json(&changed)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 409);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("immutable"),
        "{body}"
    );
    assert_eq!(last_seq(&client, base).await, seq);

    // The collector's put keeps the path id and answers ["<uuid>"].
    let collector_id = "0a6f5b0e-4c7e-11e7-a074-e1beba07c9dd";
    let mut collector = sample_report("na", "OS unsupported");
    collector["environment"]["language"]["name"] = json!("perl");
    let response = client
        .post(format!("{base}/v1/report/{collector_id}"))
        .json(&collector)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!([collector_id])
    );
    let stored: Value = get_json(&client, format!("{base}/v3/report/{collector_id}")).await;
    assert_eq!(stored["result"]["grade"], "na");

    // Unknown ids: 404 in the v3 error shape.
    let response = client
        .get(format!(
            "{base}/v3/report/0190f1a2-3b4c-7d5e-8f60-000000000000"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({ "errors": [{ "message": "Report ID not found", "path": "/id" }] })
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_examples_are_accepted_and_counterexamples_refused() {
    let directory = tempfile::tempdir().unwrap();
    let server = InProcessServer::start_in(directory.path()).await;
    let client = client();
    let base = &server.base_url;
    for (name, body) in data_files("v3") {
        let response = client
            .post(format!("{base}/v3/report"))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status == 201 || status == 200, "{name}: {status} {text}");
    }
    let seq = last_seq(&client, base).await;
    for (name, body) in data_files("v3/invalid") {
        let response = client
            .post(format!("{base}/v3/report"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{name}");
        let errors: Value = response.json().await.unwrap();
        let first = &errors["errors"][0];
        assert!(
            first["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{name}: {errors}"
        );
        assert!(
            first["path"].as_str().is_some_and(|p| p.starts_with('/')),
            "{name}: {errors}"
        );
    }
    assert_eq!(last_seq(&client, base).await, seq);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_reports_and_restarts_clean() {
    let directory = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(directory.path(), &[]);
    let client = client();
    let base = server.base_url.clone();
    let mut submissions = Vec::new();
    for index in 0..40 {
        let client = client.clone();
        let base = base.clone();
        submissions.push(tokio::spawn(async move {
            let report = sample_report("pass", &format!("report {index}"));
            client
                .post(format!("{base}/v3/report"))
                .json(&report)
                .send()
                .await
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(server.terminate(), "exit after SIGTERM was not clean");
    let mut acknowledged = Vec::new();
    for submission in submissions {
        if let Ok(response) = submission.await.unwrap()
            && response.status() == 201
        {
            acknowledged.push(
                response.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
    }
    let server = ServerProcess::start(directory.path(), &[]);
    let health = crate::support::health(&client, &server.base_url).await;
    assert_eq!(
        health["last_seq"].as_u64().unwrap(),
        acknowledged.len() as u64
    );
    for id in &acknowledged {
        let response = client
            .get(format!("{}/v3/report/{id}", server.base_url))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            200,
            "acknowledged {id} missing after SIGTERM"
        );
    }
}
