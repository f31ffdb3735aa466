//! The OpenAPI description and the router agree: every documented operation reaches a
//! handler, and every route in the source is documented.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::{InProcessServer, client, get_json};

fn sample_value(parameter: &str) -> &'static str {
    match parameter {
        "id" | "guid" => "0190f1a2-3b4c-7d5e-8f60-718293a4b5c6",
        "fact_type" => "CPAN-Testers-Report",
        "dist" => "Foo-Bar",
        "version" => "1.23",
        "author" => "EXAMPLE",
        other => panic!("no sample value for path parameter {other}"),
    }
}

fn documented_operations(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            operations.insert((method.to_uppercase(), path.clone()));
        }
    }
    operations
}

/// `.route("...", get(...).post(...))` calls in the API sources, with the legacy routes
/// expanded under their three mount points.
fn routes_in_source() -> BTreeSet<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let mut routes = BTreeSet::new();
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|extension| extension != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let is_legacy = path.file_name().unwrap() == "metabase.rs";
        let mut rest = source.as_str();
        while let Some(start) = rest.find(".route(\"") {
            rest = &rest[start + 8..];
            let end = rest.find('"').unwrap();
            let route = &rest[..end];
            let call_end = rest.find("))").unwrap_or(rest.len());
            let call = &rest[end..call_end + 2];
            let mut methods = Vec::new();
            for method in ["get", "post", "put", "delete", "head", "patch"] {
                if call.contains(&format!("{method}(")) {
                    methods.push(method.to_uppercase());
                }
            }
            let prefixes: &[&str] = if is_legacy {
                &["/api/v1", "/beta", ""]
            } else {
                &[""]
            };
            for prefix in prefixes {
                for method in &methods {
                    routes.insert((method.clone(), format!("{prefix}{route}")));
                }
            }
        }
    }
    routes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_description_and_the_router_agree() {
    let directory = tempfile::tempdir().unwrap();
    let server = InProcessServer::start_in(directory.path()).await;
    let client = client();
    let document: Value = get_json(&client, format!("{}/openapi.json", server.base_url)).await;
    assert_eq!(document["openapi"], "3.1.0");
    assert!(
        document["components"]["schemas"]["Report"]["properties"]["result"].is_object(),
        "the v3 report schema is inlined"
    );
    let documented = documented_operations(&document);

    // Every documented operation reaches a handler (not the router's 404 or 405 fallbacks).
    for (method, path) in &documented {
        let mut url = String::new();
        for segment in path.split('/').skip(1) {
            url.push('/');
            match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(parameter) => url.push_str(sample_value(parameter)),
                None => url.push_str(segment),
            }
        }
        let request = client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{url}", server.base_url),
        );
        let response = request.body("{}").send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert_ne!(status, 405, "{method} {path} is documented but not routed");
        assert!(
            !body.contains("no route for"),
            "{method} {path} is documented but not routed: {body}"
        );
    }

    // Every routed operation is documented (HEAD comes with GET in axum and is listed where a
    // client relies on it).
    for (method, path) in routes_in_source() {
        assert!(
            documented.contains(&(method.clone(), path.clone())),
            "{method} {path} is routed but not documented"
        );
    }
    server.stop().await;
}
