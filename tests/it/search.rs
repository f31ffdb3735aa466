//! `GET /v3/search` against real servers: the captured client reports plus a few v3 reports
//! written for search (a missing module on MSWin32, a segfault on OpenBSD, ...). Every answer is
//! checked against a recount from the stored documents (`GET /v3/report/{id}`), never against
//! the index's own idea of the documents.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{
    InProcessServer, ServerProcess, check_store, client, fixture, get_json, health, last_seq,
};
use crate::v3::sample_report;

/// Fixtures the capture server accepted, in replay order (registrations first).
const FIXTURE_REPLAY: &[&str] = &[
    "first-contact-03-register",
    "first-contact-04-submit-pass",
    "send-report-fail-long-output",
    "send-report-unknown-utf8-comments",
    "cpan-reporter-register",
    "cpan-reporter-pass",
    "cpan-reporter-fail",
    "cpan-reporter-na",
    "cpan-reporter-unknown",
    "cpanm-reporter-register",
    "cpanm-reporter-pass-pass",
    "cpanm-reporter-fail-fail",
    "cpanm-reporter-na-na",
    "cpanm-reporter-notests-pass",
    "space-in-secret-03-register",
    "space-in-secret-04-submit-retry",
];

/// Percent-encodes a query-string component.
fn encode(text: &str) -> String {
    let mut encoded = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// `GET /v3/search` with `parameters`; the status and the JSON body.
async fn search(
    client: &reqwest::Client,
    base_url: &str,
    parameters: &[(&str, &str)],
) -> (u16, Value) {
    let query: Vec<String> = parameters
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect();
    let response = client
        .get(format!("{base_url}/v3/search?{}", query.join("&")))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.bytes().await.unwrap();
    let json = serde_json::from_slice(&body).unwrap_or_else(|_| {
        panic!(
            "{parameters:?}: not JSON: {}",
            String::from_utf8_lossy(&body)
        )
    });
    (status, json)
}

/// A search that must succeed.
async fn search_ok(client: &reqwest::Client, base_url: &str, parameters: &[(&str, &str)]) -> Value {
    let (status, body) = search(client, base_url, parameters).await;
    assert_eq!(status, 200, "{parameters:?}: {body}");
    body
}

/// Waits (polling, up to 60 s) until the index has caught up with the store.
async fn wait_until_indexed(client: &reqwest::Client, base_url: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health = health(client, base_url).await;
        if health["index"]["indexed_seq"] == health["last_seq"]
            && health["index"]["lag_entries"] == 0
        {
            return health;
        }
        assert!(
            Instant::now() < deadline,
            "the index did not catch up: {health}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A v3 report with its own dist, platform and output.
fn custom_report(
    dist: &str,
    grade: &str,
    osname: &str,
    perl: &str,
    arch: &str,
    output: &str,
) -> Value {
    json!({
        "reporter": { "name": "Search Tester", "email": "search.tester@example.invalid" },
        "environment": {
            "language": { "name": "Perl 5", "version": perl, "archname": arch },
            "system": { "osname": osname, "osversion": "1.0" }
        },
        "distribution": { "name": dist, "version": "1.00", "author": "SEARCHER" },
        "result": { "grade": grade, "output": { "test": output } }
    })
}

/// The reports written for search, on top of the captured fixtures.
fn search_reports() -> Vec<Value> {
    let mut reports = vec![
        custom_report(
            "Foo-Consumer",
            "fail",
            "MSWin32",
            "5.40.0",
            "MSWin32-x64-multi-thread",
            "t/02-basic.t .. Can't locate Foo/Bar.pm in @INC (you may need to install the Foo::Bar module) \
             (@INC entries checked: C:\\Strawberry\\perl\\lib) at t/02-basic.t line 3.\n\
             BEGIN failed--compilation aborted at t/02-basic.t line 3.\n\
             t/02-basic.t .. Dubious, test returned 2 (wstat 512, 0x200)\n",
        ),
        custom_report(
            "Foo-Consumer",
            "fail",
            "linux",
            "5.40.0",
            "x86_64-linux",
            "t/01-load.t .. Can't locate Foo/Bar/Baz.pm in @INC (you may need to install the Foo::Bar::Baz module)\n",
        ),
        custom_report(
            "XS-Thing",
            "fail",
            "openbsd",
            "5.38.2",
            "OpenBSD.amd64-openbsd",
            "t/03-xs.t ..... Segmentation fault (core dumped)\nFailed 1/1 test programs. 0/0 subtests failed.\n",
        ),
        custom_report(
            "XS-Thing",
            "pass",
            "darwin",
            "5.40.0",
            "darwin-2level",
            "t/03-xs.t ..... ok\nAll tests successful.\n",
        ),
        custom_report(
            "XS-Thing",
            "unknown",
            "openbsd",
            "5.36.1",
            "OpenBSD.amd64-openbsd",
            "No tests defined for XS::Thing extension.\n",
        ),
    ];
    let mut old = custom_report(
        "Old-Dist",
        "pass",
        "netbsd",
        "5.8.9",
        "i386-netbsd",
        "All tests successful.\nResult: PASS\n",
    );
    old["created"] = json!("2020-01-15T10:00:00Z");
    reports.push(old);
    reports
}

/// Loads the captured fixtures, the v3 example documents and [`search_reports`]; returns the
/// ids of the stored reports.
async fn load_corpus(client: &reqwest::Client, base_url: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for name in FIXTURE_REPLAY {
        let request = fixture(name);
        let response = request.send(client, base_url).await;
        assert_eq!(response.status(), 201, "{name}");
        if request.path.contains("/submit/") {
            let (core, _) = request.submission_levels();
            ids.push(core["guid"].as_str().unwrap().to_lowercase());
        }
    }
    let examples = ["full", "minimal", "raku", "collector-variant"].map(|name| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/data/v3/{name}.json"));
        serde_json::from_slice::<Value>(&std::fs::read(path).unwrap()).unwrap()
    });
    for report in examples.into_iter().chain(search_reports()) {
        let response = client
            .post(format!("{base_url}/v3/report"))
            .json(&report)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{report}");
        let body: Value = response.json().await.unwrap();
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    ids
}

/// A stored report as the oracle sees it: read from `GET /v3/report/{id}`.
#[derive(Debug, Clone)]
struct Stored {
    id: String,
    dist: String,
    version: String,
    author: String,
    grade: String,
    osname: String,
    perl: String,
    arch: String,
    reporter_email: String,
    created: i64,
    text: String,
}

async fn stored_reports(client: &reqwest::Client, base_url: &str, ids: &[String]) -> Vec<Stored> {
    let mut reports = Vec::new();
    for id in ids {
        let document: Value = get_json(client, format!("{base_url}/v3/report/{id}")).await;
        let text_at = |pointer: &str| {
            document
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let output = &document["result"]["output"];
        let text = ["uncategorized", "configure", "build", "test", "install"]
            .iter()
            .filter_map(|section| output[section].as_str())
            .filter(|section| !section.trim().is_empty())
            .collect::<Vec<_>>()
            .join("\n\n");
        let created = time::OffsetDateTime::parse(
            &text_at("/created"),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
        .unix_timestamp();
        reports.push(Stored {
            id: id.clone(),
            dist: text_at("/distribution/name"),
            version: text_at("/distribution/version"),
            author: text_at("/distribution/author"),
            grade: text_at("/result/grade"),
            osname: text_at("/environment/system/osname"),
            perl: text_at("/environment/language/version"),
            arch: text_at("/environment/language/archname"),
            reporter_email: text_at("/reporter/email"),
            created,
            text,
        });
    }
    reports
}

/// Whether `text` holds `needle` case-insensitively, not inside a longer word (the oracle of
/// term and phrase matches; needles start and end with letters or digits).
fn contains_word_sequence(text: &str, needle: &str) -> bool {
    let haystack = text.to_lowercase();
    let needle = needle.to_lowercase();
    let is_word = |character: Option<char>| {
        character.is_some_and(|character| character.is_alphanumeric() || character == '_')
    };
    haystack.match_indices(&needle).any(|(start, _)| {
        let before = haystack[..start].chars().next_back();
        let after = haystack[start + needle.len()..].chars().next();
        !is_word(before) && !is_word(after)
    })
}

fn hit_ids(body: &Value) -> Vec<String> {
    body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["id"].as_str().unwrap().to_string())
        .collect()
}

fn id_set<'a>(reports: impl IntoIterator<Item = &'a Stored>) -> BTreeSet<String> {
    reports
        .into_iter()
        .map(|report| report.id.clone())
        .collect()
}

/// Every hit of a search, following cursors with pages of `limit`.
async fn all_pages(
    client: &reqwest::Client,
    base_url: &str,
    parameters: &[(&str, &str)],
    limit: usize,
) -> Vec<String> {
    let limit_text = limit.to_string();
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut page_parameters: Vec<(&str, &str)> = parameters.to_vec();
        page_parameters.push(("limit", &limit_text));
        if let Some(cursor) = &cursor {
            page_parameters.push(("cursor", cursor));
        }
        let body = search_ok(client, base_url, &page_parameters).await;
        let page = hit_ids(&body);
        assert!(page.len() <= limit);
        ids.extend(page);
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return ids,
        }
        assert!(ids.len() < 10_000, "pagination does not end");
    }
}

/// Facet counts of a search as value → count maps per facet.
fn facets_of(body: &Value) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut facets = BTreeMap::new();
    for (name, facet) in body["facets"].as_object().unwrap() {
        assert_eq!(facet["other"], 0, "{name}: more values than listed");
        let counts = facet["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|value| {
                (
                    value["value"].as_str().unwrap().to_string(),
                    value["count"].as_u64().unwrap(),
                )
            })
            .collect();
        facets.insert(name.clone(), counts);
    }
    facets
}

/// The answer's facet counts equal a recount over the stored reports whose ids are `ids`.
fn assert_facets_are_a_recount(
    body: &Value,
    reports: &[Stored],
    ids: &BTreeSet<String>,
    context: &str,
) {
    let matching: Vec<&Stored> = reports
        .iter()
        .filter(|report| ids.contains(&report.id))
        .collect();
    assert_eq!(facets_of(body), recount(&matching), "{context}: facets");
}

fn recount(reports: &[&Stored]) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut facets: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for report in reports {
        for (facet, value) in [
            ("grade", &report.grade),
            ("osname", &report.osname),
            ("perl", &report.perl),
            ("dist", &report.dist),
        ] {
            *facets
                .entry(facet.to_string())
                .or_default()
                .entry(value.clone())
                .or_default() += 1;
        }
    }
    for facet in ["grade", "osname", "perl", "dist"] {
        facets.entry(facet.to_string()).or_default();
    }
    facets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixture_reports_answer_terms_phrases_filters_and_facets() {
    let directory = tempfile::tempdir().unwrap();
    let server = InProcessServer::start_in(directory.path()).await;
    let client = client();
    let base = server.base_url.clone();
    let ids = load_corpus(&client, &base).await;
    wait_until_indexed(&client, &base).await;
    let reports = stored_reports(&client, &base, &ids).await;

    // Everything: the total, and facets equal to a recount of the stored documents.
    let body = search_ok(&client, &base, &[("limit", "100")]).await;
    assert_eq!(body["total"], reports.len() as u64);
    assert_eq!(id_set(&reports), hit_ids(&body).into_iter().collect());
    assert_eq!(
        facets_of(&body),
        recount(&reports.iter().collect::<Vec<_>>())
    );

    // Terms and phrases, checked against the text of every stored report.
    let text_queries: &[(&str, &str)] = &[
        ("segmentation", "segmentation"),
        ("\"Segmentation fault\"", "segmentation fault"),
        ("\"OS unsupported\"", "os unsupported"),
        ("Foo::Bar", "foo::bar"),
        ("Foo::Bar::Baz", "foo::bar::baz"),
        ("Foo/Bar.pm", "foo/bar.pm"),
        ("t/02-basic.t", "t/02-basic.t"),
        ("t/long-failure.t", "t/long-failure.t"),
        ("Test::Harness::Switches", "test::harness::switches"),
        (
            "\"Can't locate Foo/Bar.pm in @INC\"",
            "can't locate foo/bar.pm in @inc",
        ),
        ("Acme::MBHarness::NoTests", "acme::mbharness::notests"),
        ("élève", "élève"),
        ("\"Failed test 'pattern 3'\"", "failed test 'pattern 3'"),
    ];
    for (query, needle) in text_queries {
        let expected: BTreeSet<String> = id_set(
            reports
                .iter()
                .filter(|report| contains_word_sequence(&report.text, needle)),
        );
        assert!(
            !expected.is_empty(),
            "{query}: the corpus should contain it"
        );
        let body = search_ok(&client, &base, &[("q", query), ("limit", "100")]).await;
        let found: BTreeSet<String> = hit_ids(&body).into_iter().collect();
        assert_eq!(found, expected, "{query}");
        assert_eq!(body["total"], expected.len() as u64, "{query}");
        assert_eq!(body["sort"], "relevance");
        assert_facets_are_a_recount(&body, &reports, &expected, query);
    }
    // A module glued to a perl switch, as every `make test` line prints it
    // ("-MExtUtils::Command::MM"), is found by its name.
    let expected: BTreeSet<String> = id_set(reports.iter().filter(|report| {
        report.text.contains("-MExtUtils::Command::MM")
            || contains_word_sequence(&report.text, "extutils::command::mm")
    }));
    assert!(
        !expected.is_empty(),
        "the corpus should contain -MExtUtils::Command::MM"
    );
    let body = search_ok(
        &client,
        &base,
        &[("q", "ExtUtils::Command::MM"), ("limit", "100")],
    )
    .await;
    assert_eq!(
        hit_ids(&body).into_iter().collect::<BTreeSet<_>>(),
        expected
    );
    // Separators matter: the module is not the two words.
    let body = search_ok(&client, &base, &[("q", "Bar::Foo")]).await;
    assert_eq!(body["total"], 0);
    let body = search_ok(&client, &base, &[("q", "\"Foo Bar\"")]).await;
    assert_eq!(body["total"], 0, "Foo::Bar is not the phrase \"Foo Bar\"");

    // Boolean operators and fields in q.
    let segfault_or_unsupported: BTreeSet<String> = id_set(reports.iter().filter(|report| {
        contains_word_sequence(&report.text, "segmentation fault")
            || contains_word_sequence(&report.text, "os unsupported")
    }));
    let body = search_ok(
        &client,
        &base,
        &[
            ("q", "\"Segmentation fault\" OR \"OS unsupported\""),
            ("limit", "100"),
        ],
    )
    .await;
    assert_eq!(
        hit_ids(&body).into_iter().collect::<BTreeSet<_>>(),
        segfault_or_unsupported
    );
    let locate_not_windows: BTreeSet<String> = id_set(reports.iter().filter(|report| {
        contains_word_sequence(&report.text, "can't locate") && report.osname != "MSWin32"
    }));
    for query in [
        "\"Can't locate\" -osname:MSWin32",
        "\"Can't locate\" AND NOT osname:MSWin32",
    ] {
        let body = search_ok(&client, &base, &[("q", query), ("limit", "100")]).await;
        assert_eq!(
            hit_ids(&body).into_iter().collect::<BTreeSet<_>>(),
            locate_not_windows,
            "{query}"
        );
    }
    let not_pass: BTreeSet<String> = id_set(reports.iter().filter(|report| report.grade != "pass"));
    let body = search_ok(&client, &base, &[("q", "NOT grade:pass"), ("limit", "100")]).await;
    assert_eq!(
        hit_ids(&body).into_iter().collect::<BTreeSet<_>>(),
        not_pass
    );

    // Every filter, alone and combined with text, against the stored documents.
    type Select = fn(&Stored) -> &str;
    let filters: &[(&str, &str, Select)] = &[
        ("dist", "XS-Thing", |report| &report.dist),
        ("version", "0.02", |report| &report.version),
        ("grade", "fail", |report| &report.grade),
        ("osname", "openbsd", |report| &report.osname),
        ("perl", "5.40.0", |report| &report.perl),
        ("arch", "x86_64-linux-gnu-thread-multi", |report| {
            &report.arch
        }),
        ("reporter", "search.tester@example.invalid", |report| {
            &report.reporter_email
        }),
        ("author", "MBHARNESS", |report| &report.author),
    ];
    for (name, value, select) in filters {
        let expected = id_set(reports.iter().filter(|report| select(report) == *value));
        assert!(
            !expected.is_empty(),
            "{name}={value}: the corpus should contain it"
        );
        let body = search_ok(&client, &base, &[(name, value), ("limit", "100")]).await;
        assert_eq!(
            hit_ids(&body).into_iter().collect::<BTreeSet<_>>(),
            expected,
            "{name}={value}"
        );
        assert_eq!(body["sort"], "newest");
        assert_facets_are_a_recount(&body, &reports, &expected, &format!("{name}={value}"));
        // The same as a field in q.
        let in_q = format!("{name}:\"{value}\"");
        let body = search_ok(&client, &base, &[("q", &in_q), ("limit", "100")]).await;
        assert_eq!(
            hit_ids(&body).into_iter().collect::<BTreeSet<_>>(),
            expected,
            "{in_q}"
        );
    }
    // A perl series, repeated values (OR) and filters with text (AND).
    let series = id_set(
        reports
            .iter()
            .filter(|report| report.perl.starts_with("5.40.")),
    );
    let body = search_ok(&client, &base, &[("perl", "5.40"), ("limit", "100")]).await;
    assert_eq!(hit_ids(&body).into_iter().collect::<BTreeSet<_>>(), series);
    // A filter to one value answers that facet without counting it; a series or several
    // values leave it counted. Either way the facets equal a recount.
    assert_facets_are_a_recount(&body, &reports, &series, "perl=5.40");
    let darwin_or_openbsd = id_set(
        reports
            .iter()
            .filter(|report| report.osname == "darwin" || report.osname == "openbsd"),
    );
    let body = search_ok(
        &client,
        &base,
        &[
            ("osname", "darwin"),
            ("osname", "openbsd"),
            ("limit", "100"),
        ],
    )
    .await;
    assert_eq!(
        hit_ids(&body).into_iter().collect::<BTreeSet<_>>(),
        darwin_or_openbsd
    );
    assert_facets_are_a_recount(
        &body,
        &reports,
        &darwin_or_openbsd,
        "osname=darwin&osname=openbsd",
    );
    let failing_locates = id_set(reports.iter().filter(|report| {
        contains_word_sequence(&report.text, "can't locate")
            && report.grade == "fail"
            && report.perl == "5.40.0"
    }));
    let body = search_ok(
        &client,
        &base,
        &[
            ("q", "\"Can't locate\""),
            ("grade", "FAIL"),
            ("perl", "5.40.0"),
            ("limit", "100"),
        ],
    )
    .await;
    assert_eq!(
        hit_ids(&body).into_iter().collect::<BTreeSet<_>>(),
        failing_locates
    );
    assert_eq!(failing_locates.len(), 2);

    // since (inclusive) and until (exclusive) on `created`.
    let boundary = time::OffsetDateTime::parse(
        "2021-01-01T00:00:00Z",
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
    .unix_timestamp();
    let before = id_set(reports.iter().filter(|report| report.created < boundary));
    let after = id_set(reports.iter().filter(|report| report.created >= boundary));
    assert_eq!(before.len(), 1);
    let body = search_ok(&client, &base, &[("until", "2021-01-01"), ("limit", "100")]).await;
    assert_eq!(hit_ids(&body).into_iter().collect::<BTreeSet<_>>(), before);
    let body = search_ok(
        &client,
        &base,
        &[("since", "2021-01-01T00:00:00Z"), ("limit", "100")],
    )
    .await;
    assert_eq!(hit_ids(&body).into_iter().collect::<BTreeSet<_>>(), after);
    let exact = reports
        .iter()
        .find(|report| report.dist == "Old-Dist")
        .unwrap();
    let body = search_ok(
        &client,
        &base,
        &[
            ("since", "2020-01-15T10:00:00Z"),
            ("until", "2020-01-15T10:00:01Z"),
        ],
    )
    .await;
    assert_eq!(hit_ids(&body), vec![exact.id.clone()]);

    // Hits carry the stored fields, newest first by default without q.
    let body = search_ok(&client, &base, &[("limit", "100")]).await;
    let created_order: Vec<i64> = hit_ids(&body)
        .iter()
        .map(|id| {
            reports
                .iter()
                .find(|report| &report.id == id)
                .unwrap()
                .created
        })
        .collect();
    assert!(
        created_order.windows(2).all(|pair| pair[0] >= pair[1]),
        "newest first: {created_order:?}"
    );
    for hit in body["hits"].as_array().unwrap() {
        let report = reports
            .iter()
            .find(|report| report.id == hit["id"])
            .unwrap();
        assert_eq!(hit["dist"], report.dist.as_str());
        assert_eq!(hit["version"], report.version.as_str());
        assert_eq!(hit["grade"], report.grade.as_str());
        assert_eq!(hit["osname"], report.osname.as_str());
        assert_eq!(hit["perl"], report.perl.as_str());
        assert_eq!(hit["arch"], report.arch.as_str());
        assert_eq!(hit["reporter"]["email"], report.reporter_email.as_str());
        assert_eq!(hit["author"], report.author.as_str());
        // Made from the preview stored in the index: the start of the text, unmarked.
        let mut leading_end = report.text.trim_start().len().min(240);
        while !report.text.trim_start().is_char_boundary(leading_end) {
            leading_end -= 1;
        }
        assert_eq!(
            hit["snippet"]["text"],
            &report.text.trim_start()[..leading_end]
        );
        assert!(
            hit["created"]
                .as_str()
                .is_some_and(|created| !created.is_empty())
        );
        assert!(hit["seq"].as_u64().is_some_and(|seq| seq > 0));
    }

    // limit=0: the total and the facets only.
    let body = search_ok(&client, &base, &[("q", "fail"), ("limit", "0")]).await;
    assert!(body["hits"].as_array().unwrap().is_empty());
    assert!(body["total"].as_u64().unwrap() > 0);
    assert!(body["next_cursor"].is_null());

    // A report whose preview is too long to store in the index: its hit is read from sled,
    // whole.
    let mut long = custom_report(
        "Long-Osversion",
        "pass",
        "linux",
        "5.40.0",
        "x86_64-linux",
        "All tests successful.",
    );
    let long_osversion = "6.1.0-".repeat(800);
    long["environment"]["system"]["osversion"] = json!(long_osversion);
    let response = client
        .post(format!("{base}/v3/report"))
        .json(&long)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    wait_until_indexed(&client, &base).await;
    let body = search_ok(&client, &base, &[("dist", "Long-Osversion")]).await;
    assert_eq!(body["total"], 1);
    assert_eq!(body["hits"][0]["osversion"], long_osversion.as_str());
    assert_eq!(body["hits"][0]["snippet"]["text"], "All tests successful.");

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snippets_highlight_the_matches() {
    let directory = tempfile::tempdir().unwrap();
    let server = InProcessServer::start_in(directory.path()).await;
    let client = client();
    let base = server.base_url.clone();
    load_corpus(&client, &base).await;
    wait_until_indexed(&client, &base).await;

    let body = search_ok(&client, &base, &[("q", "Foo::Bar"), ("osname", "MSWin32")]).await;
    assert_eq!(body["total"], 1);
    let snippet = &body["hits"][0]["snippet"];
    let text = snippet["text"].as_str().unwrap();
    assert!(
        snippet["html"]
            .as_str()
            .unwrap()
            .contains("<b>Foo::Bar</b>"),
        "{snippet}"
    );
    let highlighted: Vec<String> = snippet["highlights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|range| {
            let (start, end) = (
                range[0].as_u64().unwrap() as usize,
                range[1].as_u64().unwrap() as usize,
            );
            text.chars().skip(start).take(end - start).collect()
        })
        .collect();
    assert!(!highlighted.is_empty());
    assert!(
        highlighted
            .iter()
            .all(|part| part.eq_ignore_ascii_case("foo::bar")),
        "{highlighted:?}"
    );

    // A phrase: every word highlighted, markup escaped.
    let body = search_ok(&client, &base, &[("q", "\"Segmentation fault\"")]).await;
    let html = body["hits"][0]["snippet"]["html"].as_str().unwrap();
    assert!(html.contains("<b>Segmentation fault</b>"), "{html}");
    let body = search_ok(
        &client,
        &base,
        &[("q", "backslashes"), ("dist", "Acme-MBHarness-Fail")],
    )
    .await;
    let html = body["hits"][0]["snippet"]["html"].as_str().unwrap();
    assert!(
        html.contains("<b>backslashes</b>") && html.contains("&lt;tags&gt;"),
        "{html}"
    );

    // Without words to match, the snippet is the start of the text, unmarked.
    let body = search_ok(
        &client,
        &base,
        &[("dist", "XS-Thing"), ("grade", "unknown")],
    )
    .await;
    let snippet = &body["hits"][0]["snippet"];
    assert!(
        snippet["text"]
            .as_str()
            .unwrap()
            .starts_with("No tests defined"),
        "{snippet}"
    );
    assert!(snippet["highlights"].as_array().unwrap().is_empty());

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_neither_skips_nor_repeats() {
    let directory = tempfile::tempdir().unwrap();
    let server = InProcessServer::start_in(directory.path()).await;
    let client = client();
    let base = server.base_url.clone();
    let ids = load_corpus(&client, &base).await;
    // Same-second `created` values and equal scores: ties are broken by seq.
    for index in 0..15 {
        let report = sample_report(
            "fail",
            &format!("Failed test 'tie {index}'\nLooks like you failed 1 test of 1."),
        );
        let response = client
            .post(format!("{base}/v3/report"))
            .json(&report)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
    }
    wait_until_indexed(&client, &base).await;

    let searches: &[&[(&str, &str)]] = &[
        &[],
        &[("sort", "relevance")],
        &[("q", "failed")],
        &[("q", "failed"), ("sort", "newest")],
        &[("q", "\"Looks like you failed\"")],
        &[("grade", "fail")],
    ];
    for parameters in searches {
        let mut one_page_parameters = parameters.to_vec();
        one_page_parameters.push(("limit", "100"));
        let one_page = search_ok(&client, &base, &one_page_parameters).await;
        let expected = hit_ids(&one_page);
        assert_eq!(one_page["total"], expected.len() as u64);
        assert!(one_page["next_cursor"].is_null());
        for limit in [1, 3, 7] {
            let paged = all_pages(&client, &base, parameters, limit).await;
            assert_eq!(paged, expected, "{parameters:?} in pages of {limit}");
        }
        // Shallow offsets agree with the cursor.
        let mut offset_parameters = parameters.to_vec();
        offset_parameters.extend([("offset", "2"), ("limit", "3")]);
        let body = search_ok(&client, &base, &offset_parameters).await;
        assert_eq!(
            hit_ids(&body),
            expected.iter().skip(2).take(3).cloned().collect::<Vec<_>>(),
            "{parameters:?}"
        );
    }
    let everything = all_pages(&client, &base, &[], 4).await;
    assert_eq!(everything.len(), ids.len() + 15);
    assert_eq!(
        everything.iter().collect::<BTreeSet<_>>().len(),
        everything.len()
    );

    // Reports arriving while paging do not shift the pages: the cursor keeps its snapshot.
    let first = search_ok(&client, &base, &[("limit", "5")]).await;
    for index in 0..3 {
        let report = sample_report("pass", &format!("arrived while paging {index}"));
        client
            .post(format!("{base}/v3/report"))
            .json(&report)
            .send()
            .await
            .unwrap();
    }
    wait_until_indexed(&client, &base).await;
    let mut paged = hit_ids(&first);
    let mut cursor = first["next_cursor"].as_str().unwrap().to_string();
    loop {
        let body = search_ok(&client, &base, &[("limit", "5"), ("cursor", &cursor)]).await;
        assert_eq!(body["total"], first["total"], "the snapshot's total");
        assert_eq!(body["facets"], first["facets"], "the snapshot's facets");
        paged.extend(hit_ids(&body));
        match body["next_cursor"].as_str() {
            Some(next) => cursor = next.to_string(),
            None => break,
        }
    }
    assert_eq!(paged, everything);
    let fresh = search_ok(&client, &base, &[("limit", "0")]).await;
    assert_eq!(fresh["total"], everything.len() as u64 + 3);

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_queries_are_refused_with_a_message() {
    let directory = tempfile::tempdir().unwrap();
    let server = InProcessServer::start_in(directory.path()).await;
    let client = client();
    let base = server.base_url.clone();
    let response = client
        .post(format!("{base}/v3/report"))
        .json(&sample_report("pass", "ok"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    wait_until_indexed(&client, &base).await;
    let a_cursor = {
        let body = search_ok(&client, &base, &[("limit", "0")]).await;
        assert!(body["next_cursor"].is_null());
        // A cursor needs a second page: ask for the first hit of two.
        client
            .post(format!("{base}/v3/report"))
            .json(&sample_report("fail", "not ok"))
            .send()
            .await
            .unwrap();
        wait_until_indexed(&client, &base).await;
        let body = search_ok(&client, &base, &[("limit", "1")]).await;
        body["next_cursor"].as_str().unwrap().to_string()
    };
    let tampered = {
        let mut bytes = a_cursor.clone().into_bytes();
        let middle = bytes.len() / 2;
        bytes[middle] = if bytes[middle] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    };
    let long_query = "x".repeat(1001);
    let deep_query = format!("{}x{}", "(".repeat(30), ")".repeat(30));
    let many_words = "word ".repeat(65);
    // (parameters, the error's path, a part of its message)
    type Refusal<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let refusals: Vec<Refusal> = vec![
        (vec![("q", "\"Can't locate")], "/q", "unterminated"),
        (vec![("q", "(a OR b")], "/q", "never closed"),
        (vec![("q", "a) b")], "/q", "no matching"),
        (vec![("q", "OR fail")], "/q", "left"),
        (vec![("q", "fail AND")], "/q", "followed"),
        (vec![("q", "NOT")], "/q", "followed"),
        (vec![("q", "()")], "/q", "empty group"),
        (vec![("q", "colour:red")], "/q", "unknown field \"colour\""),
        (vec![("q", "grade:excellent")], "/q", "not one of"),
        (vec![("q", "id:123")], "/q", "UUID"),
        (vec![("q", "dist:(A OR B)")], "/q", "not supported"),
        (vec![("q", "@@ ..")], "/q", "no word"),
        (vec![("q", &long_query)], "/q", "1000"),
        (vec![("q", &deep_query)], "/q", "deep"),
        (vec![("q", &many_words)], "/q", "more than 64"),
        (vec![("q", "a"), ("q", "b")], "/q", "more than once"),
        (vec![("limit", "101")], "/limit", "maximum of 100"),
        (vec![("limit", "-1")], "/limit", "integer"),
        (vec![("limit", "ten")], "/limit", "integer"),
        (
            vec![("offset", "990"), ("limit", "20")],
            "/offset",
            "window too deep",
        ),
        (
            vec![("offset", "5"), ("cursor", &a_cursor)],
            "/offset",
            "cannot be combined",
        ),
        (vec![("cursor", "garbage")], "/cursor", "malformed"),
        (vec![("cursor", &tampered)], "/cursor", "malformed"),
        (
            vec![("cursor", &a_cursor), ("q", "other")],
            "/cursor",
            "another query",
        ),
        (vec![("colour", "red")], "/colour", "unknown parameter"),
        (vec![("sort", "oldest")], "/sort", "newest, relevance"),
        (vec![("grade", "excellent")], "/grade", "not one of"),
        (vec![("since", "yesterday")], "/since", "RFC 3339"),
        (vec![("until", "2024-13-45")], "/until", "RFC 3339"),
        (
            vec![("since", "2024-02-01"), ("until", "2024-01-01")],
            "/since",
            "earlier",
        ),
    ];
    for (parameters, path, message_part) in &refusals {
        let (status, body) = search(&client, &base, parameters).await;
        assert_eq!(status, 400, "{parameters:?}: {body}");
        let error = &body["errors"][0];
        assert_eq!(error["path"], *path, "{parameters:?}: {body}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains(message_part),
            "{parameters:?}: {message:?} should mention {message_part:?}"
        );
    }
    // A query string that does not decode.
    let response = client
        .get(format!("{base}/v3/search?q=%FF%FE"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    // Hostile input: an answer, never a crash or a 500.
    let hostile = [
        "\"",
        "(",
        ")",
        "AND",
        "OR OR",
        "-",
        "+",
        ":",
        "a:",
        ":a",
        "\\",
        "*",
        "~",
        "^",
        "[",
        "{",
        "foo^2",
        "a:b:c",
        "NOT NOT NOT x",
        "- -x",
        "+-x",
        "x AND AND y",
        "\u{0}",
        "\u{202e}evil",
        "日本語 OR 語",
        "\"\"",
        "text:\"\"",
        "dist:",
        "''''",
        "a'b",
        "C:\\Strawberry\\perl",
        "http://example.com/x",
        "((((a))))",
        "a OR (b AND (c OR NOT d))",
    ];
    for query in hostile {
        let (status, body) = search(&client, &base, &[("q", query)]).await;
        assert!(status == 200 || status == 400, "{query:?}: {status} {body}");
        if status == 400 {
            assert!(
                body["errors"][0]["message"]
                    .as_str()
                    .is_some_and(|message| !message.is_empty()),
                "{query:?}"
            );
        }
    }
    let health = health(&client, &base).await;
    assert_eq!(health["status"], "ok");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_reports_become_searchable_within_a_second() {
    let directory = tempfile::tempdir().unwrap();
    let server = InProcessServer::start_in(directory.path()).await;
    let client = client();
    let base = server.base_url.clone();

    // Steady background ingest, about 50 reports a second.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let background = {
        let (client, base, stop) = (client.clone(), base.clone(), stop.clone());
        tokio::spawn(async move {
            let mut sent = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let report = sample_report(
                    "fail",
                    &format!("background report {sent}\nFailed test 'steady'"),
                );
                let response = client
                    .post(format!("{base}/v3/report"))
                    .json(&report)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 201);
                sent += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            sent
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Each probe: time from its 201 until a search finds it, polled every 10 ms. The 1 s
    // target is asserted on the median of the probes; each single probe gets a loose 5 s bound
    // so a loaded 2-core CI machine does not make the test flaky.
    let mut delays = Vec::new();
    for probe in 0..9 {
        let word = format!("freshnessprobe{}", uuid::Uuid::new_v4().simple());
        let report = sample_report("fail", &format!("t/00-probe.t .. {word} not ok {probe}"));
        let response = client
            .post(format!("{base}/v3/report"))
            .json(&report)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let acknowledged = Instant::now();
        loop {
            let body = search_ok(&client, &base, &[("q", &word), ("limit", "1")]).await;
            if body["total"] == 1 {
                break;
            }
            assert!(
                acknowledged.elapsed() < Duration::from_secs(5),
                "probe {probe} not searchable after 5 s"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        delays.push(acknowledged.elapsed());
        tokio::time::sleep(Duration::from_millis(137)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = background.await.unwrap();
    assert!(sent > 10, "the background ingest ran ({sent} reports)");
    delays.sort();
    let median = delays[delays.len() / 2];
    assert!(
        median <= Duration::from_secs(1),
        "median freshness {median:?}, all {delays:?}"
    );

    // Freshness is visible in /health.
    let health = wait_until_indexed(&client, &base).await;
    let index = &health["index"];
    assert_eq!(index["lag_entries"], 0);
    assert_eq!(index["lag_seconds"], 0.0);
    assert!(index["segments"].as_u64().unwrap() >= 1);
    assert!(index["commits"].as_u64().unwrap() >= 1);
    assert_eq!(index["documents"], sent + 9);
    server.stop().await;
}

/// Searches whose answers must not depend on how the index was built.
const STABLE_SEARCHES: &[&[(&str, &str)]] = &[
    &[("limit", "100")],
    &[("q", "failed"), ("limit", "100")],
    &[
        ("q", "\"restart report\""),
        ("sort", "newest"),
        ("limit", "100"),
    ],
    &[("grade", "fail"), ("limit", "7")],
];

async fn stable_answers(
    client: &reqwest::Client,
    base_url: &str,
) -> Vec<(Value, Vec<String>, Value)> {
    let mut answers = Vec::new();
    for parameters in STABLE_SEARCHES {
        let body = search_ok(client, base_url, parameters).await;
        answers.push((
            body["total"].clone(),
            hit_ids(&body),
            body["facets"].clone(),
        ));
    }
    answers
}

async fn post_numbered_reports(
    client: &reqwest::Client,
    base_url: &str,
    range: std::ops::Range<usize>,
) -> Vec<String> {
    let mut ids = Vec::new();
    for index in range {
        let grade = if index % 3 == 0 { "pass" } else { "fail" };
        let report = sample_report(
            grade,
            &format!("restart report {index}\nFailed test 'number {index}'"),
        );
        let response = client
            .post(format!("{base_url}/v3/report"))
            .json(&report)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        ids.push(body["id"].as_str().unwrap().to_string());
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_resumes_after_a_kill_and_is_rebuilt_when_deleted() {
    let directory = tempfile::tempdir().unwrap();
    let client = client();

    // 30 reports, all searchable (committed), then SIGKILL.
    let server = ServerProcess::start(directory.path(), &[]);
    let mut ids = post_numbered_reports(&client, &server.base_url, 0..30).await;
    wait_until_indexed(&client, &server.base_url).await;
    server.kill();

    // The restarted index resumes from its commit payload: nothing is indexed twice.
    let server = ServerProcess::start(directory.path(), &[]);
    let health = wait_until_indexed(&client, &server.base_url).await;
    assert_eq!(health["index"]["indexed_seq"], 30);
    assert_eq!(
        health["index"]["reports_indexed"], 0,
        "resumed from the payload: {health}"
    );
    // 20 more, killed right after the last 201, before the indexer can have committed them all.
    ids.extend(post_numbered_reports(&client, &server.base_url, 30..50).await);
    server.kill();

    let server = ServerProcess::start(directory.path(), &[]);
    let health = wait_until_indexed(&client, &server.base_url).await;
    assert_eq!(health["last_seq"], 50);
    assert!(
        health["index"]["reports_indexed"].as_u64().unwrap() <= 20,
        "{health}"
    );
    // Exactly the stored reports: none missing, none twice.
    let all = all_pages(&client, &server.base_url, &[], 100).await;
    assert_eq!(all.len(), 50);
    assert_eq!(
        all.iter().cloned().collect::<BTreeSet<_>>(),
        ids.iter().cloned().collect::<BTreeSet<_>>()
    );
    assert_eq!(health["index"]["documents"], 50);
    let answers = stable_answers(&client, &server.base_url).await;
    assert!(server.terminate());

    // Delete the index folder: it is rebuilt from the store, with the same answers.
    std::fs::remove_dir_all(directory.path().join("index")).unwrap();
    let server = ServerProcess::start(directory.path(), &[]);
    let health = wait_until_indexed(&client, &server.base_url).await;
    assert_eq!(health["index"]["reports_indexed"], 50, "rebuilt: {health}");
    assert_eq!(stable_answers(&client, &server.base_url).await, answers);
    assert!(server.terminate());

    // `reportstore reindex` does the same offline.
    let output = std::process::Command::new(crate::support::binary())
        .arg("reindex")
        .arg("--data-dir")
        .arg(directory.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["indexed_seq"], 50);
    assert_eq!(summary["documents"], 50);
    assert!(!directory.path().join("index.rebuild").exists());
    let server = ServerProcess::start(directory.path(), &[]);
    let health = wait_until_indexed(&client, &server.base_url).await;
    assert_eq!(
        health["index"]["reports_indexed"], 0,
        "the reindexed index is complete: {health}"
    );
    assert_eq!(stable_answers(&client, &server.base_url).await, answers);
    assert_eq!(last_seq(&client, &server.base_url).await, 50);
    assert!(server.terminate());
    let (report, consistent) = check_store(directory.path());
    assert!(consistent, "{report}");
}
