//! Bad input of every kind gets a 4xx with a clear JSON error, stores nothing, and the server
//! goes on serving.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine;
use reportstore::config::ServeConfig;
use serde_json::{Value, json};

use crate::support::{InProcessServer, client, fixture, last_seq};
use crate::v3::sample_report;

const LIMIT: usize = 256 * 1024;

async fn start(directory: &std::path::Path) -> InProcessServer {
    let mut config =
        ServeConfig::with_data_dir(directory.to_path_buf(), "127.0.0.1:0".parse().unwrap());
    config.max_body_bytes = LIMIT;
    InProcessServer::start(config).await
}

/// Sends raw bytes over TCP and returns (status, body).
fn raw_request(base_url: &str, request: &[u8], close_write: bool) -> (u16, String) {
    let address = base_url.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream.write_all(request).unwrap();
    if close_write {
        stream.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"));
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, body)
}

fn v3_error_message(body: &str) -> String {
    let json: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body:?}"));
    let message = json["errors"][0]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no errors[0].message in {json}"));
    assert!(json["errors"][0]["path"].is_string(), "no path in {json}");
    message.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_v3_input_is_refused_clearly_and_stores_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let server = start(directory.path()).await;
    let client = client();
    let base = server.base_url.clone();
    let good = client
        .post(format!("{base}/v3/report"))
        .json(&sample_report("pass", "ok"))
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), 201);
    let seq = last_seq(&client, &base).await;

    let mut missing_reporter = sample_report("pass", "x");
    missing_reporter.as_object_mut().unwrap().remove("reporter");
    let mut wrong_type = sample_report("pass", "x");
    wrong_type["result"]["grade"] = json!(5);
    let mut tests_string = sample_report("pass", "x");
    tests_string["result"]["tests"] = json!("many");
    let mut bad_id = sample_report("pass", "x");
    bad_id["id"] = json!("not-a-uuid");
    let mut bad_created = sample_report("pass", "x");
    bad_created["created"] = json!("last tuesday");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty body", Vec::new(), "empty"),
        ("whitespace body", b"  \n".to_vec(), "empty"),
        (
            "malformed JSON",
            b"{\"reporter\": ".to_vec(),
            "not valid JSON",
        ),
        ("not an object", b"[1,2]".to_vec(), "object"),
        ("invalid UTF-8", b"{\"a\":\"\xff\xfe\"}".to_vec(), "JSON"),
        (
            "missing reporter",
            serde_json::to_vec(&missing_reporter).unwrap(),
            "reporter",
        ),
        (
            "unknown grade",
            serde_json::to_vec(&sample_report("great", "x")).unwrap(),
            "",
        ),
        (
            "grade of the wrong type",
            serde_json::to_vec(&wrong_type).unwrap(),
            "",
        ),
        (
            "tests as a string",
            serde_json::to_vec(&tests_string).unwrap(),
            "",
        ),
        ("bad id", serde_json::to_vec(&bad_id).unwrap(), ""),
        ("bad created", serde_json::to_vec(&bad_created).unwrap(), ""),
    ];
    for (name, body, expected) in cases {
        let response = client
            .post(format!("{base}/v3/report"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{name}");
        let message = v3_error_message(&response.text().await.unwrap());
        assert!(
            message.contains(expected),
            "{name}: {message:?} lacks {expected:?}"
        );
    }

    // Over the limit: refused by Content-Length before reading, and by counting when chunked.
    let too_big = vec![b' '; LIMIT + 1];
    let response = client
        .post(format!("{base}/v3/report"))
        .body(too_big.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert!(v3_error_message(&response.text().await.unwrap()).contains("limit"));
    let mut chunked = b"POST /v3/report HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for chunk in too_big.chunks(16 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let base_for_raw = base.clone();
    let (status, body) =
        tokio::task::spawn_blocking(move || raw_request(&base_for_raw, &chunked, false))
            .await
            .unwrap();
    assert_eq!(status, 413, "{body}");

    // A truncated body: Content-Length promises more than arrives.
    let request = format!(
        "POST /v3/report HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{}",
        "{\"reporter\":{"
    );
    let base_for_raw = base.clone();
    let (status, body) =
        tokio::task::spawn_blocking(move || raw_request(&base_for_raw, request.as_bytes(), true))
            .await
            .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(v3_error_message(&body).contains("could not be read"));

    // Bad ids in paths.
    let response = client
        .get(format!("{base}/v3/report/12345"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(v3_error_message(&response.text().await.unwrap()).contains("not a valid report id"));
    let response = client
        .post(format!("{base}/v1/report/nope"))
        .json(&sample_report("pass", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    // Unknown routes and methods are JSON too.
    let response = client.get(format!("{base}/nowhere")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    v3_error_message(&response.text().await.unwrap());
    let response = client
        .delete(format!("{base}/v3/report"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    v3_error_message(&response.text().await.unwrap());

    assert_eq!(
        last_seq(&client, &base).await,
        seq,
        "bad input changed the store"
    );
    let good = client
        .post(format!("{base}/v3/report"))
        .json(&sample_report("fail", "still serving"))
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), 201);
    server.stop().await;
    let (report, consistent) = crate::support::check_store(directory.path());
    assert!(consistent, "{report}");
    assert_eq!(report["reports"], 2);
}

/// The `cpan-reporter-pass` body with an edit at one level; the levels below it are
/// re-encoded first, so the edit is what reaches the server.
enum Edit {
    Level1(fn(&mut Value)),
    Level2(fn(&mut Value)),
    Level3(fn(&mut Value)),
}

fn metabase_body_with(edit: Edit) -> String {
    let submit = fixture("cpan-reporter-pass");
    let mut level_one: Value = serde_json::from_str(&submit.body).unwrap();
    let mut level_two: Value =
        serde_json::from_str(level_one["content"].as_str().unwrap()).unwrap();
    let mut level_three: Value =
        serde_json::from_str(level_two[0]["content"].as_str().unwrap()).unwrap();
    if let Edit::Level3(edit) = edit {
        edit(&mut level_three);
    }
    level_two[0]["content"] = json!(serde_json::to_string(&level_three).unwrap());
    if let Edit::Level2(edit) = edit {
        edit(&mut level_two);
    }
    level_one["content"] = json!(serde_json::to_string(&level_two).unwrap());
    if let Edit::Level1(edit) = edit {
        edit(&mut level_one);
    }
    serde_json::to_string(&level_one).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_metabase_input_is_refused_clearly_and_stores_nothing() {
    let directory = tempfile::tempdir().unwrap();
    let server = start(directory.path()).await;
    let client = client();
    let base = server.base_url.clone();
    let register = fixture("cpan-reporter-register");
    assert_eq!(register.send(&client, &base).await.status(), 201);
    let submit = fixture("cpan-reporter-pass");
    let authorization = submit
        .headers
        .iter()
        .find(|(name, _)| name == "Authorization")
        .unwrap()
        .1
        .clone();
    let seq = last_seq(&client, &base).await;

    let post = |body: Vec<u8>| {
        let client = client.clone();
        let url = format!("{base}/api/v1/submit/CPAN-Testers-Report");
        let authorization = authorization.clone();
        async move {
            client
                .post(url)
                .header("Authorization", authorization)
                .header("Content-Type", "application/octet-stream")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };

    let cases: Vec<(&str, String, &str)> = vec![
        ("empty body", String::new(), "empty"),
        (
            "malformed JSON",
            "{\"metadata\":".to_string(),
            "not valid JSON",
        ),
        (
            "content JSON-in-JSON does not parse",
            metabase_body_with(Edit::Level1(|one| {
                one["content"] = json!("[{\"metadata\":")
            })),
            "content is not valid JSON",
        ),
        (
            "inner content does not parse",
            metabase_body_with(Edit::Level2(|two| two[0]["content"] = json!("{\"grade\":"))),
            "content[0].content is not valid JSON",
        ),
        (
            "missing guid",
            metabase_body_with(Edit::Level1(|one| {
                one["metadata"]["core"]
                    .as_object_mut()
                    .unwrap()
                    .remove("guid");
            })),
            "guid",
        ),
        (
            "guid of the wrong type",
            metabase_body_with(Edit::Level1(|one| {
                one["metadata"]["core"]["guid"] = json!(17)
            })),
            "guid",
        ),
        (
            "bad guid",
            metabase_body_with(Edit::Level1(|one| {
                one["metadata"]["core"]["guid"] = json!("zzz")
            })),
            "not a GUID",
        ),
        (
            "unknown grade",
            metabase_body_with(Edit::Level3(|three| three["grade"] = json!("splendid"))),
            "grade",
        ),
        (
            "missing textreport",
            metabase_body_with(Edit::Level3(|three| {
                three.as_object_mut().unwrap().remove("textreport");
            })),
            "textreport",
        ),
        (
            "bad resource",
            metabase_body_with(Edit::Level1(|one| {
                one["metadata"]["core"]["resource"] = json!("http://example/x")
            })),
            "resource",
        ),
        (
            "type differs from the URL",
            metabase_body_with(Edit::Level1(|one| {
                one["metadata"]["core"]["type"] = json!("CPAN-Testers-Other")
            })),
            "does not match",
        ),
        (
            "no LegacyReport fact",
            metabase_body_with(Edit::Level1(|one| one["content"] = json!("[]"))),
            "LegacyReport",
        ),
    ];
    for (name, body, expected) in cases {
        let response = post(body.into_bytes()).await;
        assert_eq!(response.status(), 400, "{name}");
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{name}"
        );
        let json: Value = response.json().await.unwrap();
        let message = json["error"].as_str().unwrap();
        assert!(
            message.starts_with("invalid submission data"),
            "{name}: {message}"
        );
        assert!(
            message.contains(expected),
            "{name}: {message:?} lacks {expected:?}"
        );
    }
    let response = post(b"{\"a\":\"\xff\"}".to_vec()).await;
    assert_eq!(response.status(), 400, "invalid UTF-8");
    let response = post(vec![b' '; LIMIT + 1]).await;
    assert_eq!(response.status(), 413);
    // Refused unread, so the connection must not be reused by the client's pool.
    assert_eq!(response.headers()["connection"], "close");

    // Authentication problems are 401s with a reason.
    let unknown_user = base64::engine::general_purpose::STANDARD
        .encode("11111111-2222-3333-4444-555555555555:secret");
    for header in [
        None,
        Some("Basic !!!".to_string()),
        Some(format!("Basic {unknown_user}")),
    ] {
        let mut request = client
            .post(format!("{base}/api/v1/submit/CPAN-Testers-Report"))
            .body(submit.body.clone());
        if let Some(header) = header {
            request = request.header("Authorization", header);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401);
        assert!(response.json::<Value>().await.unwrap()["error"].is_string());
    }
    // Bad guids and bad registrations.
    let response = client
        .get(format!("{base}/api/v1/guid/not-a-guid"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    for body in ["", "[1]", "[{\"metadata\":{\"core\":{}}}]", "{\"x\":1}"] {
        let response = client
            .post(format!("{base}/api/v1/register"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "register {body:?}");
        assert!(response.json::<Value>().await.unwrap()["error"].is_string());
    }
    // Taking over a registered profile with another secret is refused.
    let mut hijack: Value = serde_json::from_str(&register.body).unwrap();
    let secret_fact = hijack
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|fact| fact["metadata"]["core"]["type"] == "Metabase-User-Secret")
        .unwrap();
    secret_fact["content"] = json!("somebody-else");
    let response = client
        .post(format!("{base}/api/v1/register"))
        .body(serde_json::to_string(&hijack).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(
        response.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("already registered")
    );
    // The same registration again is harmless.
    assert_eq!(register.send(&client, &base).await.status(), 201);

    assert_eq!(
        last_seq(&client, &base).await,
        seq,
        "bad input changed the store"
    );
    assert_eq!(
        submit.send(&client, &base).await.status(),
        201,
        "still serving"
    );
    server.stop().await;
}
