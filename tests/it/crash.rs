//! Crash safety: a real server process under concurrent v3 and Metabase ingest is SIGKILLed at
//! random moments, again and again. Every acknowledged report must survive byte for byte, the
//! store must open every time, and the log must stay gap-free.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{ServerProcess, check_store, client, fixture};
use crate::v3::sample_report;

const CYCLES: usize = 24;
const SUBMITTERS: usize = 8;

/// What a client was told was stored, and what it sent.
#[derive(Clone)]
enum Acknowledged {
    V3 { canonical: Vec<u8> },
    Metabase { body: String },
}

/// A small deterministic PRNG so a failing run can be repeated from its printed seed.
struct SplitMix(u64);
impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn metabase_body(template: &str, template_guid: &str, guid: &Uuid) -> String {
    template.replace(template_guid, &guid.hyphenated().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_reports_survive_repeated_sigkill() {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("crash test seed {seed}");
    let mut random = SplitMix(seed);
    let directory = tempfile::tempdir().unwrap();
    let client = client();
    let acknowledged: Arc<Mutex<HashMap<Uuid, Acknowledged>>> = Arc::default();

    let register = fixture("cpan-reporter-register");
    let submit = fixture("cpan-reporter-pass");
    let (core, _) = submit.submission_levels();
    let template_guid = core["guid"].as_str().unwrap().to_string();
    let authorization = submit
        .headers
        .iter()
        .find(|(name, _)| name == "Authorization")
        .unwrap()
        .1
        .clone();

    for cycle in 0..CYCLES {
        let server = ServerProcess::start(directory.path(), &[]);
        if cycle == 0 {
            assert_eq!(register.send(&client, &server.base_url).await.status(), 201);
        }
        let mut submitters = Vec::new();
        for submitter in 0..SUBMITTERS {
            let client = client.clone();
            let base = server.base_url.clone();
            let acknowledged = Arc::clone(&acknowledged);
            let body_template = submit.body.clone();
            let template_guid = template_guid.clone();
            let authorization = authorization.clone();
            let text_size = 200 + (random.next() % 20_000) as usize;
            submitters.push(tokio::spawn(async move {
                for round in 0.. {
                    let id = Uuid::new_v4();
                    let (request, record) = if (submitter + round) % 3 == 0 {
                        let body = metabase_body(&body_template, &template_guid, &id);
                        let request = client
                            .post(format!("{base}/api/v1/submit/CPAN-Testers-Report"))
                            .header("Authorization", authorization.as_str())
                            .header("Content-Type", "application/octet-stream")
                            .body(body.clone());
                        (request, Acknowledged::Metabase { body })
                    } else {
                        let mut report = sample_report(
                            ["pass", "fail", "na", "unknown"][round % 4],
                            &format!(
                                "cycle {cycle} submitter {submitter} round {round} {}",
                                "x".repeat(text_size)
                            ),
                        );
                        report["id"] = json!(id.hyphenated().to_string());
                        report["created"] = json!("2026-11-22T12:00:00Z");
                        let canonical = reportstore::ingest::canonical_json(&report);
                        let request = client.post(format!("{base}/v3/report")).json(&report);
                        (request, Acknowledged::V3 { canonical })
                    };
                    match request.send().await {
                        Ok(response) if response.status() == 201 => {
                            acknowledged.lock().unwrap().insert(id, record);
                        }
                        Ok(response) => panic!("unexpected status {} for {id}", response.status()),
                        // The server was killed: this report may or may not be stored.
                        Err(_) => return,
                    }
                }
            }));
        }
        let kill_after = Duration::from_millis(30 + random.next() % 400);
        tokio::time::sleep(kill_after).await;
        server.kill();
        for submitter in submitters {
            submitter.await.unwrap();
        }
    }

    // The store opens cleanly and passes its own consistency check after the last kill.
    let (report, consistent) = check_store(directory.path());
    assert!(consistent, "store inconsistent after SIGKILLs: {report}");
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > CYCLES * 2,
        "too little traffic to mean anything: {}",
        acknowledged.len()
    );
    assert!(report["reports"].as_u64().unwrap() >= acknowledged.len() as u64);
    assert_eq!(report["last_seq"], report["entries"]);
    println!(
        "{CYCLES} SIGKILL cycles: {} reports acknowledged, {} stored (the rest were in flight at a kill)",
        acknowledged.len(),
        report["reports"]
    );

    let server = ServerProcess::start(directory.path(), &[]);
    for (id, record) in &acknowledged {
        match record {
            Acknowledged::V3 { canonical } => {
                let response = client
                    .get(format!("{}/v3/report/{id}", server.base_url))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200, "acknowledged v3 report {id} lost");
                let bytes = response.bytes().await.unwrap();
                assert_eq!(
                    bytes.as_ref(),
                    canonical.as_slice(),
                    "v3 report {id} changed"
                );
            }
            Acknowledged::Metabase { body } => {
                let response = client
                    .get(format!("{}/api/v1/guid/{id}", server.base_url))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    response.status(),
                    200,
                    "acknowledged metabase report {id} lost"
                );
                let bytes = response.bytes().await.unwrap();
                assert_eq!(
                    bytes.as_ref(),
                    format!("{{\"fact\":{body}}}").as_bytes(),
                    "fact {id} changed"
                );
            }
        }
    }
    // Resubmitting an acknowledged report after the crashes is still a duplicate, not new.
    let (id, record) = acknowledged.iter().next().unwrap();
    if let Acknowledged::V3 { canonical } = record {
        let response = client
            .post(format!("{}/v3/report", server.base_url))
            .body(canonical.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "resubmitting {id}");
    }
    let _: Value = crate::support::health(&client, &server.base_url).await;
}
